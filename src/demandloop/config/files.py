"""Settings that may also come from a folder of TOML files (``workflows/*.toml``,
``experiences/*.toml``): each file holds one kind of table, checked as the same table in
``demandloop.toml`` is, with errors that name the file and the field."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from demandloop.config.base import said
from demandloop.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def tables_from_folder(folder: Path, key: str, model: type[M], what: str) -> list[M]:
    """Every ``[[key]]`` table of the ``*.toml`` files in *folder* (in file-name order), as
    *model*; nothing when the folder is missing. *what* names one table in messages."""
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    found: list[M] = []
    for path in folder_files(folder):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = set(data) - {key}
            if unknown:
                raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}'",
                                  hint=f"a {what} file holds [[{key}]] tables")
            found += adapter.validate_python(data.get(key, []))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = list(first["loc"])
            # the table by its name (and its place, counted from 1 as a reader counts),
            # not by pydantic's index from 0: "at '1.when.trigger'" named the second
            table, message = "", said(first)
            if loc and isinstance(loc[0], int):
                i = int(loc.pop(0))
                name = data[key][i].get("name") if isinstance(data[key][i], dict) else None
                if isinstance(name, str) and name:
                    table = f" '{name}'"
                    message = message.removeprefix(f"{what} '{name}': ")  # (said once)
                table += f" (table {i + 1} of [[{key}]])"
            where = ".".join(str(p) for p in loc)
            raise ConfigError(f"{path}: invalid {what}{table}"
                              + (f" at '{where}'" if where else "") + f": {message}"
                              ) from None
    return found


def fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """What an edit of *paths* changes: each existing file's name, size and mtime (a
    server compares it to know when to read its files again)."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def folder_files(folder: Path) -> list[Path]:
    """The ``*.toml`` files of *folder*, in name order (none when it is missing)."""
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def first_duplicate(names: Iterable[str]) -> str | None:
    """The first (in sorted order) of *names* given more than once, or None."""
    seen: set[str] = set()
    twice: set[str] = set()
    for n in names:
        (twice if n in seen else seen).add(n)
    return min(twice) if twice else None
