"""The collect verbs of the workspace: ingest events, import CRM, Olist, spend and IP-range
files, load a simulation; and resolve (identity and account matching, enrichment)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from demandloop.collect.crm import read_crm_csv
from demandloop.collect.files import event_files
from demandloop.collect.imports import import_crm, import_ip_ranges, import_leads, import_spend
from demandloop.collect.ipranges import read_ip_ranges
from demandloop.collect.olist import read_olist
from demandloop.collect.run import IngestResult, Progress, ingest_files
from demandloop.collect.segment import Limits
from demandloop.collect.spend import read_spend_csv
from demandloop.domains import alias_map
from demandloop.enrich import run as enrich_run
from demandloop.enrich.channels import CHANNEL_MOTION
from demandloop.enrich.run import ResolveResult
from demandloop.errors import UsageError
from demandloop.workspace.base import Base


@dataclass
class Loaded:
    """What :meth:`Workspace.load_simulation` loaded: the ingestion, and rows per import."""

    ingest: IngestResult
    ingest_seconds: float
    accounts: int
    contacts: int
    opportunities: int
    ip_ranges: int
    spend: int


class Collect(Base):
    """Ingest, imports and resolve."""

    def ingest(self, *paths: str | Path, skip_invalid: bool = False,
               received_at: dt.datetime | None = None,
               progress: Progress | None = None) -> IngestResult:
        """Ingest Segment-spec event files (JSONL/JSON, optionally .gz); a folder stands
        for the event files in it."""
        if not paths:
            raise UsageError("no files given", hint="name one or more .jsonl/.json files")
        limits = Limits(self.settings.ingest.max_event_bytes,
                        self.settings.ingest.max_message_id_length)
        return ingest_files(self.store, event_files([Path(p) for p in paths]), limits=limits,
                            skip_invalid=skip_invalid, received_at=received_at,
                            progress=progress)

    def import_crm(self, kind: str, path: str | Path,
                   mapping: dict[str, str] | None = None,
                   ignored: list[str] | None = None,
                   unlinked: list[str] | None = None,
                   skipped: list[str] | None = None) -> int:
        """Import a CRM CSV (``accounts``, ``contacts`` or ``opportunities``); rows written.
        Importing again updates (an account re-imported with its domain keeps one row).

        Domains listed in ``identity.domain_aliases`` are mapped to their main domain. The
        file's headers no field was taken from are appended to *ignored* when given, and
        the contacts written without the account they name (not in the workspace yet:
        import the accounts, then the contacts again) to *unlinked*, and the contacts left
        out for want of an email address to *skipped* (``FILE:LINE: why``).
        """
        parsed = read_crm_csv(Path(path), kind, mapping)
        if ignored is not None:
            ignored.extend(parsed.ignored)
        if skipped is not None:
            skipped.extend(parsed.skipped)
        aliases = alias_map(self.settings.identity.domain_aliases)
        for row in parsed.rows:
            for key in ("domain", "account_domain"):
                if row.get(key) in aliases:
                    row[key] = aliases[row[key]]
        return import_crm(self.store, parsed, unlinked)

    def import_olist(self, directory: str | Path) -> dict[str, int]:
        """Import the Olist marketing funnel (MQLs as leads, closed deals as won deals)."""
        data = read_olist(Path(directory))
        import_leads(self.store, data.accounts, data.leads, data.opportunities)
        return {"accounts": len(data.accounts), "leads": len(data.leads),
                "opportunities": len(data.opportunities)}

    def import_spend(self, path: str | Path, warnings: list[str] | None = None) -> int:
        """Import a spend CSV (date, channel, campaign, spend, impressions, clicks); rows for
        a date/channel/campaign already stored are replaced. A channel no touch can have
        (a typo: ``paid_searh``) is imported and named in *warnings* when given: its spend
        would meet no lead or deal, and the reports' cost per lead and ROI miss it."""
        rows = read_spend_csv(Path(path)).rows
        if warnings is not None:
            with self.store.reader() as cur:
                seen = {c for (c,) in cur.execute(
                    "SELECT DISTINCT channel FROM touches WHERE workspace_id = ?",
                    [self.store.workspace_id]).fetchall()}
            known = (set(CHANNEL_MOTION) | seen
                     | {r.channel for r in self.settings.enrich.channel_rules})
            for channel in sorted({str(r["channel"]) for r in rows} - known):
                warnings.append(
                    f"channel '{channel}' is none touches are classified into, so its spend "
                    "meets no lead or deal (a typo? channels: "
                    f"{', '.join(sorted(known))}; a channel of your own needs "
                    "[[enrich.channel_rules]])")
        return import_spend(self.store, rows)

    def load_simulation(self, folder: str | Path, *, spend: bool = True) -> Loaded:
        """Load what ``demandloop simulate`` wrote into *folder* as a user would load their
        own data: the events, the CRM's accounts, contacts and opportunities, the IP ranges,
        (with *spend*) the spend file and the site's access log. Nothing is resolved or
        scored."""
        market = Path(folder)
        started = time.perf_counter()
        ingest = self.ingest(market / "events.jsonl")
        seconds = time.perf_counter() - started
        crm = {kind: self.import_crm(kind, market / f"{kind}.csv")
               for kind in ("accounts", "contacts", "opportunities")}
        ranges = self.import_ip_ranges(market / "ip_ranges.csv")
        spent = self.import_spend(market / "spend.csv") if spend else 0
        if (market / "access.log").exists():  # the site's access log (AI crawlers)
            self.import_access_logs(market / "access.log")  # type: ignore[attr-defined]
        return Loaded(ingest=ingest, ingest_seconds=seconds, accounts=crm["accounts"],
                      contacts=crm["contacts"], opportunities=crm["opportunities"],
                      ip_ranges=ranges, spend=spent)

    def import_ip_ranges(self, path: str | Path) -> int:
        """Import company IP ranges (``cidr`` or ``start,end`` + ``domain``/``organisation``)."""
        ranges = read_ip_ranges(Path(path))
        return import_ip_ranges(self.store, ranges, str(path))

    def resolve(self, *, engine: str | None = None, summary: bool = True) -> ResolveResult:
        """Resolve persons, account matches and touches from what arrived since the last
        run. *engine* (default ``[compute] engine``): ``spark`` rebuilds them from the
        Parquet lake on Spark (see docs/scale.md), and writes them here.

        Without *summary* the result's totals (persons, touches, unresolved) stay 0: the
        server's loop, which prints none, saves their count of every row."""
        if self.engine(engine) == "duckdb":
            return enrich_run.run(self.store, self.settings, summary=summary)
        from demandloop.store import spark

        lake = self.written_lake()
        sql = spark.lake_sql(self.settings.compute.spark, lake)
        return enrich_run.run(self.store, self.settings, enrich_run.Lake(sql, lake.parent))
