"""Experiences as configured: ``[[personalize.experiences]]`` in ``demandloop.toml`` plus
every ``experiences/*.toml`` file (``[[experiences]]`` tables), checked together (unique
names). A server re-reads them when a file changes (:func:`fingerprint`)."""

from __future__ import annotations

from pathlib import Path

from demandloop.config import CONFIG_FILE, Settings, files
from demandloop.config.files import first_duplicate, tables_from_folder
from demandloop.config.personalize import ExperienceSetting
from demandloop.errors import ConfigError

EXPERIENCES_DIR = "experiences"


def experiences(directory: Path, settings: Settings) -> list[ExperienceSetting]:
    """``[[personalize.experiences]]`` plus every ``experiences/*.toml`` of *directory*."""
    found = list(settings.personalize.experiences)
    found += tables_from_folder(directory / EXPERIENCES_DIR, "experiences", ExperienceSetting,
                                "experience")
    twice = first_duplicate(e.name for e in found)
    if twice:
        raise ConfigError(f"experience '{twice}' is defined twice",
                          hint="names must be unique across demandloop.toml and experiences/")
    return found


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What a change to the experiences changes: each file's name, size and mtime."""
    return files.fingerprint([directory / CONFIG_FILE,
                              *files.folder_files(directory / EXPERIENCES_DIR)])
