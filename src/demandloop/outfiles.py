"""Files a command writes where the user said (``report html``, ``audiences export``,
``privacy export --out``): a folder given for a file, a folder that cannot be made and a
file that cannot be written are one clear refusal each, not an internal error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demandloop.errors import InputError


def target(path: str | Path, name: str) -> Path:
    """Where to write the file the user named *path*: in it, as *name*, when it is a
    folder (as ``cp`` does); its folder made when missing."""
    chosen = Path(path)
    if chosen.is_dir():
        chosen = chosen / name
    with written(chosen):
        chosen.parent.mkdir(parents=True, exist_ok=True)
    return chosen


@contextmanager
def written(path: Path) -> Iterator[Path]:
    """Write *path* in the block: an operating system's refusal (a read-only folder, a
    full disk, a name that is a folder) becomes an :class:`InputError` naming the file."""
    try:
        yield path
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="choose a file in a folder you can write to") from None
