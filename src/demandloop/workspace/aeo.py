"""The answer-engine verbs of the workspace: access logs in, AI crawlers named.

Parsing is collect's (:mod:`demandloop.collect.access_logs`), naming the crawler is
enrich's (:mod:`demandloop.enrich.crawlers`), the rows are written by the store.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from demandloop.activate import knowledge
from demandloop.collect.access_logs import open_log, parse
from demandloop.collect.site import read_site
from demandloop.enrich.channels import AI_HOSTS
from demandloop.enrich.crawlers import catalog, verifier
from demandloop.errors import InputError, UsageError
from demandloop.measure import aeo, site_audit
from demandloop.store import access_log
from demandloop.store.memory import collector_paused
from demandloop.workspace.base import Base

#: bad lines listed in an error (the count says how many more)
MAX_PROBLEMS = 20
#: what landing a chunk gives: rows inserted, bad lines (number, why), crawls per category
Landed = tuple[int, list[tuple[int, str]], dict[str, int]]


def _line_order(problem: str) -> tuple[str, int]:
    """FILE:LINE: why, ordered by file, then line (JSON lines are found while reading,
    combined ones when landed)."""
    where, _, _ = problem.partition(": ")
    file, _, line = where.rpartition(":")
    return file, int(line) if line.isdigit() else 0


@dataclass
class AccessLogResult:
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0
    #: AI crawler requests in the files read, per category; ``spoofed``: those naming a
    #: crawler from an address that is not its (see enrich.crawlers.Verifier)
    crawls: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Aeo(Base):
    """Answer-engine optimisation: what AI crawlers read."""

    def audit_site(self, source: str, base_url: str = "", limit: int = 200
                   ) -> dict[str, Any]:
        """Audit a site (a build folder or a URL) for AI answer engines (see
        :mod:`demandloop.measure.site_audit`). *base_url* is the site's address when
        auditing a folder (default ``content.base_url``)."""
        site = read_site(source, limit)
        base = site.base if site.base != "/" else (base_url or self.settings.content.base_url
                                                    or "/")
        crawlers = [(c.name, c.category) for c in catalog().crawlers.values()]
        result = site_audit.audit(base, site.robots, site.llms, site.sitemap, site.pages,
                                  crawlers)
        result["failed"] = site.failed
        return result

    def aeo(self, days: int = 28, as_of: dt.datetime | None = None) -> dict[str, Any]:
        """The AEO report (see :mod:`demandloop.measure.aeo`): its key pages are the
        content index's (``demandloop content index``) when there is one."""
        if not 1 <= days <= 3650:
            raise UsageError(f"--days must be between 1 and 3650, got {days}")
        index = knowledge.load(Path(self.directory) / knowledge.INDEX_DIR)
        pages = sorted({urlsplit(u).path or "/" for u in index.pages["url"].to_pylist()}
                       ) if index is not None else []
        return aeo.report(self.store, days=days, as_of=as_of, key_pages=pages,
                          ai_hosts=AI_HOSTS)

    def import_access_logs(self, *paths: str | Path, skip_invalid: bool = False
                           ) -> AccessLogResult:
        """Import web server / CDN access logs (combined format or CDN JSON lines, .gz
        too). A bad line fails the import with every ``FILE:LINE`` and writes nothing,
        unless *skip_invalid*; lines already imported are skipped."""
        if not paths:
            raise UsageError("no files given", hint="name one or more access log files")
        files = [Path(p) for p in paths]
        for f in files:
            if not f.is_file():
                raise InputError(f"{f}: no such file", hint="check the path")
        with collector_paused():
            return self._import_access_logs(files, skip_invalid)

    def _import_access_logs(self, files: list[Path], skip_invalid: bool) -> AccessLogResult:
        started = time.perf_counter()
        out = AccessLogResult()
        crawlers, checker = catalog(), verifier()
        crawls: Counter[str] = Counter()

        def name(agent: str) -> tuple[str, str] | None:
            found = crawlers.classify(agent)
            return (found.name, found.category) if found else None

        def landed(job: tuple[Future[Landed], Path] | None) -> None:
            if job is None:
                return
            added, wrong, seen = job[0].result()
            out.imported += added
            out.invalid += len(wrong)
            crawls.update(seen)
            room = MAX_PROBLEMS - len(out.problems)
            out.problems += [f"{job[1]}:{n}: {why}" for n, why in wrong][:max(room, 0)]

        # one transaction (all or nothing); DuckDB lands chunk k in a thread of its own
        # (releasing the GIL) while this one reads chunk k + 1
        with self.store.writer() as cur, ThreadPoolExecutor(max_workers=1) as pool:
            job: tuple[Future[Landed], Path] | None = None
            for f in files:
                with open_log(f) as stream:
                    for chunk in parse(stream, str(f)):
                        out.lines += chunk.lines
                        out.invalid += len(chunk.bad)
                        out.problems += chunk.bad[:max(MAX_PROBLEMS - len(out.problems), 0)]
                        landed(job)  # with a bad line, landed all the same (to find them
                        # all: combined lines are parsed when landed) and rolled back below
                        job = (pool.submit(access_log.insert, cur, self.store.workspace_id,
                                           chunk, name, checker.verify, f.name), f)
            landed(job)
            out.problems.sort(key=_line_order)
            if out.invalid and not skip_invalid:
                more = out.invalid - len(out.problems)
                raise InputError(
                    f"{out.invalid:,} of {out.lines:,} line(s) are not access-log lines; "
                    "nothing was written",
                    hint="fix them, or pass --skip-invalid to import the others",
                    problems=out.problems + ([f"... and {more:,} more"] if more > 0 else []))
        out.duplicates = out.lines - out.invalid - out.imported
        out.crawls = dict(crawls)
        out.seconds = time.perf_counter() - started
        return out
