"""The personalisation verbs of the workspace, and the decide service a server runs.

Here the stages meet: the address lookup is resolve's, the visit's channel is enrich's
taxonomy, the experiences and the index are activate's. ``serve`` only asks
:class:`DecideService` for the current :class:`~demandloop.activate.decide_index.Decider`.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from demandloop.activate import decide_index, experience_files
from demandloop.activate.personalize import compile_experiences, prehide, preview
from demandloop.config import Settings
from demandloop.config.personalize import ExperienceSetting
from demandloop.enrich.channels import classify
from demandloop.enrich.run import channel_rules
from demandloop.errors import ConfigError, UsageError
from demandloop.resolve.addresses import lookup_from, lookup_inputs
from demandloop.store import generations
from demandloop.workspace.base import Base

logger = logging.getLogger("demandloop.loader")
#: how often a server looks for a new snapshot or changed experience files (seconds)
RECHECK_SECONDS = 1.0


def channel_function(settings: Settings) -> decide_index.ChannelOf:
    """A visit's channel by the workspace's channel rules (cached per distinct visit: the
    rules run over a frame, about a millisecond a call)."""
    rules = channel_rules(settings)

    @lru_cache(maxsize=4096)
    def of(key: tuple[str, ...]) -> str:
        row = dict(zip(("utm_source", "utm_medium", "utm_campaign", "utm_term", "referrer",
                        "url"), key, strict=True))
        return str(classify(pd.DataFrame([row]), rules).iloc[0])

    def channel(raw: dict[str, str]) -> str:
        return of((raw["utm_source"], raw["utm_medium"], raw["utm_campaign"],
                   raw["utm_term"], raw["referrer"], raw["url"]))

    return channel


def make_decider(snap: decide_index.Snapshot, found: list[ExperienceSetting],
                 settings: Settings) -> decide_index.Decider:
    """A decider over *snap* for the experiences *found*."""
    lookup = lookup_from(snap.ranges, snap.named, settings.identity.use_asn)
    return decide_index.Decider(snap, compile_experiences(found),
                                lambda keys: lookup(keys).columns(),
                                channel_function(settings))


class Personalize(Base):
    """Website personalisation: the decisions of a visit, and the snapshot servers use."""

    def experiences(self) -> list[ExperienceSetting]:
        """``[[personalize.experiences]]`` plus every ``experiences/*.toml``."""
        return experience_files.experiences(Path(self.directory), self.settings)

    def publish_personalization(self) -> str:
        """Write the decide snapshot of the workspace now (a server does after each
        rescore); returns its generation."""
        snap = decide_index.snapshot_from(self.store, lookup_inputs)
        return decide_index.publish(Path(self.directory), snap)

    def decide(self, ip: str | None = None, anonymous_id: str | None = None,
               url: str | None = None, referrer: str | None = None) -> list[dict[str, Any]]:
        """The decisions for one visit, for sites that render on the server (what
        ``GET /v1/decide`` returns, read straight from the store: build a
        :class:`DecideService` to decide many)."""
        snap = decide_index.snapshot_from(self.store, lookup_inputs)
        decider = make_decider(snap, self.experiences(), self.settings)
        return [d.as_json() for d in decider.decide(ip, anonymous_id, url, referrer)]

    def preview_experiences(self, account: str, url: str | None = None,
                            referrer: str | None = None) -> dict[str, Any]:
        """What each experience does for an unknown visitor from *account* (its id or
        domain) on *url*: see :func:`~demandloop.activate.personalize.preview`."""
        found = self.experiences()
        if not any(e.enabled for e in found):
            raise UsageError("no experience is enabled",
                             hint="write [[experiences]] in experiences/*.toml "
                             "(docs/personalization.md)")
        key = self.account_key(account)
        decider = make_decider(decide_index.snapshot_from(self.store, lookup_inputs), found,
                               self.settings)
        if decider.account_fields(key) is None:
            raise UsageError(f"no account '{account}'",
                             hint="give an account's id or domain, as 'demandloop accounts' "
                             "lists them")
        row: dict[str, Any] = {"known": False}
        decider.add_account_and_page(row, key, url, referrer)
        return {"account_id": key, "url": url, "referrer": referrer,
                "experiences": preview(decider.experiences, row, key)}


class DecideService:
    """The current decider of a workspace directory, for a server process: rebuilt when a
    newer snapshot is published or an experience file changes, and swapped in one
    assignment. :meth:`start` checks every :data:`RECHECK_SECONDS` in a thread of its own:
    building a decider for 100k accounts takes a few hundred milliseconds, which no request
    should wait for. A broken experience file keeps the experiences that were in force
    (and says why in the log)."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.directory, self.settings = directory, settings
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._generation: str | None = None
        self._files: object = None
        self._found: list[ExperienceSetting] = []
        self.problem: str | None = None
        self._decider = make_decider(decide_index.empty_snapshot(), [], settings)
        self.refresh()

    def refresh(self) -> None:
        """Look for a new snapshot or changed experiences now."""
        with self._lock:
            files = experience_files.fingerprint(self.directory)
            generation = generations.current_generation(
                self.directory / decide_index.SNAPSHOT_DIR)
            if files == self._files and generation == self._generation:
                return
            if files != self._files:
                try:
                    self._found = experience_files.experiences(
                        self.directory, Settings.load(self.directory))
                    self.problem = None
                except (ConfigError, ValueError) as exc:
                    self.problem = str(exc).splitlines()[0]
                    # (at start there are none in force to keep: "not reloaded" misled)
                    logger.warning("experiences %s: %s", "not reloaded, the ones in force "
                                   "stay" if self._files is not None else "not loaded, none "
                                   "in force", self.problem)
                self._files = files
            try:
                snap = (decide_index.read(self.directory) if generation is not None
                        else None) or decide_index.empty_snapshot()
            except OSError as exc:  # removed by a newer publish meanwhile: next time
                logger.warning("personalisation snapshot %s not read: %s", generation, exc)
                return
            self._generation = generation
            self._decider = make_decider(snap, self._found, self.settings)

    def start(self) -> DecideService:
        """Look for changes every :data:`RECHECK_SECONDS` until the process exits."""
        def watch() -> None:
            while not self._stop.wait(RECHECK_SECONDS):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a bad snapshot must not end the watch
                    logger.exception("personalisation snapshot not reloaded")

        threading.Thread(target=watch, name="dl-decide", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def decider(self) -> decide_index.Decider:
        """The decider now in force (never waits for a rebuild)."""
        return self._decider

    def snippet_options(self) -> dict[str, Any] | None:
        """What dl.js needs to know before it asks: the selectors to pre-hide and how long
        to wait (None: no experiences, so dl.js never asks)."""
        if not any(e.enabled for e in self._found):
            return None
        return {"hide": prehide(self._found), "timeoutMs": self.settings.personalize.timeout_ms}
