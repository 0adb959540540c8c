"""The import graph of the package, from its source (``ast``, nothing is imported).

Prints, for every room of the package (a subpackage, or a top-level module), the rooms it
imports, then every import cycle between modules (strongly connected components of the
module graph, imports inside functions included: a lazy import still ties two modules
together), and the modules over 300 and over 600 lines. Imports under
``if TYPE_CHECKING:`` name a type for annotations and run nothing: they are listed apart
("for types") and make no cycle.

    python scripts/import_graph.py            # the working tree
    python scripts/import_graph.py --cycles   # cycles only
    python scripts/import_graph.py --root ../old/src   # another checkout (before/after)
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted((root / "demandloop").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _typing_only(tree: ast.Module) -> set[int]:
    """The ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                   "typing.TYPE_CHECKING"):
            out.update(id(n) for child in node.body for n in ast.walk(child))
    return out


def imports(name: str, path: Path, known: set[str], types: bool = False) -> set[str]:
    """The package modules *name* imports (``from x import y`` counts ``x.y`` when that is a
    module, else ``x``): those it runs, or with *types* those it imports for types only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    typing_only = _typing_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if (id(node) in typing_only) != types:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", action="store_true", help="print the cycles only")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="the src folder to read (default: this checkout's)")
    args = ap.parse_args()
    mods = modules(args.root)
    known = set(mods)
    # a package's own __init__ re-exporting its modules is not a dependency between rooms
    graph = {m: {t for t in imports(m, p, known) if not t.startswith(m + ".")}
             for m, p in mods.items()}
    typed = {m: imports(m, p, known, types=True) for m, p in mods.items()}
    if not args.cycles:
        rooms: dict[str, set[str]] = defaultdict(set)
        for_types: dict[str, set[str]] = defaultdict(set)
        for edges, into in ((graph, rooms), (typed, for_types)):
            for m, targets in edges.items():
                for t in targets:
                    if room(t) != room(m):
                        into[room(m)].add(room(t))
        for r in sorted({room(m) for m in mods}):
            extra = sorted(for_types[r] - rooms[r])
            print(f"{r:<16} -> {', '.join(sorted(rooms[r])) or '(nothing)'}"
                  + (f"  (for types: {', '.join(extra)})" if extra else ""))
    found = cycles(graph)
    print(f"\n{len(found)} import cycle(s) between modules")
    for c in found:
        print("  " + " <-> ".join(m.removeprefix("demandloop.") for m in c))
    if not args.cycles:
        big = [(len(p.read_text().splitlines()), m) for m, p in mods.items()]
        for limit in (300, 600):
            over = sorted(((n, m) for n, m in big if n > limit), reverse=True)
            print(f"\n{len(over)} module(s) over {limit} lines" + "".join(
                f"\n  {m.removeprefix('demandloop.')} ({n})" for n, m in over))


if __name__ == "__main__":
    main()
