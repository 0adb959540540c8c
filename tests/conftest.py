"""Shared fixtures: one small simulated market per session, fresh workspaces, the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import demandloop
from demandloop.cli import main
from demandloop.simulate import simulate


def _find_olist() -> Path:
    """The shared Olist data: $DEMANDLOOP_OLIST_DIR, or shared/ beside (or above) the checkout."""
    if os.environ.get("DEMANDLOOP_OLIST_DIR"):
        return Path(os.environ["DEMANDLOOP_OLIST_DIR"])
    here = Path(__file__).resolve()
    for parent in here.parents[1:4]:
        candidate = parent / "shared" / "datasets" / "olist"
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "shared" / "datasets" / "olist"


OLIST = _find_olist()


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated market (files only), shared by the whole session."""
    out = tmp_path_factory.mktemp("market")
    simulate(accounts=150, days=45, seed=11, out=out)
    return out


@pytest.fixture
def ws(tmp_path: Path) -> demandloop.Workspace:
    w = demandloop.open(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture
def olist_dir() -> Path:
    if not (OLIST / "marketing_qualified_leads.csv").is_file():
        pytest.skip("shared/datasets/olist is not beside the checkout")
    return OLIST


def load_market(directory: Path, market: Path, history_every: int = 7) -> Path:
    """A workspace holding a simulated market: ingested, CRM imported, resolved and scored
    every *history_every* days (so stage changes carry dates)."""
    with demandloop.open(directory) as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        ws.score_history(history_every)
    return directory


def write_jsonl(path: Path, messages: list[Any]) -> Path:
    path.write_text("".join((m if isinstance(m, str) else json.dumps(m)) + "\n"
                            for m in messages), encoding="utf-8")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process: returns (exit code, stdout, stderr). The folder given with
    ``-w`` is made a workspace first when it is none, as 'demandloop init' would (the rule
    that only 'init' creates one is tested on its own, in test_cli)."""

    def run(*args: str) -> tuple[int, str, str]:
        if "-w" in args:
            d = Path(args[args.index("-w") + 1])
            if d.suffix != ".duckdb" and not (d / "demandloop.toml").exists() \
                    and not any(d.glob("*.duckdb")):
                d.mkdir(parents=True, exist_ok=True)
                (d / "demandloop.toml").write_text("")
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
