"""Experiences as configured: ``[[personalize.experiences]]`` in ``demandloop.toml`` plus
every ``experiences/*.toml`` file (``[[experiences]]`` tables), checked together (unique
names). A server re-reads them when a file changes (:func:`fingerprint`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from demandloop.config import CONFIG_FILE, Settings
from demandloop.config.personalize import ExperienceSetting
from demandloop.errors import ConfigError

EXPERIENCES_DIR = "experiences"


def experiences(directory: Path, settings: Settings) -> list[ExperienceSetting]:
    """``[[personalize.experiences]]`` plus every ``experiences/*.toml`` of *directory*."""
    found = list(settings.personalize.experiences)
    folder = directory / EXPERIENCES_DIR
    adapter = TypeAdapter(list[ExperienceSetting])
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = set(data) - {"experiences"}
            if unknown:
                raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}'",
                                  hint="an experience file holds [[experiences]] tables")
            found += adapter.validate_python(data.get("experiences", []))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: invalid experience at '{where}': "
                              f"{first['msg']}") from None
    names = [e.name for e in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"experience '{dupes[0]}' is defined twice",
                          hint="names must be unique across demandloop.toml and experiences/")
    return found


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What a change to the experiences changes: each file's name, size and mtime."""
    folder = directory / EXPERIENCES_DIR
    paths = [directory / CONFIG_FILE, *(sorted(folder.glob("*.toml")) if folder.is_dir()
                                        else [])]
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)
