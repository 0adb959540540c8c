"""The Python API mirrors the CLI and returns DataFrames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import demandloop


def test_open_ingest_and_read(tmp_path: Path, market: Path) -> None:
    with demandloop.open(tmp_path / "w") as ws:
        r = ws.ingest(market / "events.jsonl")
        assert r.inserted > 0
        ws.import_crm("accounts", market / "accounts.csv")
        accounts = ws.accounts()
        assert isinstance(accounts, pd.DataFrame) and len(accounts) > 0
        assert {"account_id", "domain", "industry", "employees", "target"} <= set(accounts)
        events = ws.events(limit=10)
        assert len(events) == 10 and events["timestamp"].is_monotonic_increasing
        # Ibis tables for custom analytics
        assert ws.tables.events.count().execute() == r.inserted
    # opening the .duckdb file directly reaches the same data
    with demandloop.open(tmp_path / "w" / "demandloop.duckdb") as again:
        assert again.counts()["events"] == r.inserted
