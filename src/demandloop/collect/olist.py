"""The Olist marketing funnel (real B2B data) as leads, accounts and won opportunities.

Olist recruits sellers: each marketing-qualified lead (MQL) is a prospective seller company,
so every MQL becomes an account (``olist:<mql_id>``) with one lead carrying its acquisition
``origin`` and first-contact date; every closed deal becomes a won opportunity with its
business segment and the SDR/SR who worked it.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demandloop.csvfiles import ragged
from demandloop.errors import InputError

MQL_FILE = "marketing_qualified_leads.csv"
DEALS_FILE = "closed_deals.csv"
MQL_COLUMNS = ("mql_id", "first_contact_date", "landing_page_id", "origin")
DEAL_COLUMNS = ("mql_id", "seller_id", "sdr_id", "sr_id", "won_date", "business_segment",
                "lead_type", "declared_monthly_revenue")

# Olist origin -> demandloop channel (origins with no counterpart keep a plain name)
ORIGIN_CHANNEL = {
    "organic_search": "organic_search", "paid_search": "paid_search", "social": "social",
    "direct_traffic": "direct", "email": "email", "referral": "referral", "display": "display",
    "other_publicities": "other", "other": "other", "unknown": "unknown",
}


@dataclass
class OlistData:
    accounts: list[dict[str, Any]]
    leads: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]


def _read(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file",
                         hint=f"point at the folder holding {MQL_FILE} and {DEALS_FILE}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)}",
                hint=f"expected the Olist header: {', '.join(required)}",
            )
        rows, short = [], []
        width = len(reader.fieldnames or [])
        for row in reader:
            wrong = ragged(row, width)  # (read on, it was an internal error)
            if wrong is not None:
                short.append(f"{path}:{reader.line_num}: {wrong}")
            else:
                rows.append((reader.line_num, row))
        if short:
            raise InputError(f"{path}: {len(short)} line(s) without a cell per column; "
                             "nothing was imported", problems=short[:20])
        return rows


def _date(value: str, fmt: str, where: str, problems: list[str]) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(value.strip(), fmt)
    except ValueError:
        problems.append(f"{where}: '{value}' is not a date like "
                        f"{dt.datetime(2018, 1, 31, 9, 30).strftime(fmt)}")
        return None


def read_olist(directory: Path) -> OlistData:
    """Read and check both Olist files; every bad row is reported, nothing is half-read."""
    mql_path, deal_path = directory / MQL_FILE, directory / DEALS_FILE
    mqls, deals = _read(mql_path, MQL_COLUMNS), _read(deal_path, DEAL_COLUMNS)
    problems: list[str] = []
    accounts: list[dict[str, Any]] = []
    leads: list[dict[str, Any]] = []
    opportunities: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in mqls:
        mql = row["mql_id"].strip()
        if not mql or mql in seen:
            problems.append(f"{mql_path}:{line}: {'empty' if not mql else 'duplicate'} mql_id")
            continue
        seen.add(mql)
        created = _date(row["first_contact_date"], "%d-%m-%Y", f"{mql_path}:{line}", problems)
        origin = row["origin"].strip() or None
        # the account is known from the lead's first contact (a backtest before it skips it)
        accounts.append({"account_id": f"olist:{mql}", "source": "olist", "created_at": created})
        leads.append({
            "lead_id": mql, "account_id": f"olist:{mql}", "origin": origin,
            "channel": ORIGIN_CHANNEL.get(origin or "unknown", origin),
            "landing_page": row["landing_page_id"].strip() or None, "status": "mql",
            "created_at": created, "source": "olist",
        })
    for line, row in deals:
        mql = row["mql_id"].strip()
        if mql not in seen:
            problems.append(f"{deal_path}:{line}: mql_id '{mql}' is not in {MQL_FILE}")
            continue
        won = _date(row["won_date"], "%d-%m-%Y %H:%M", f"{deal_path}:{line}", problems)
        try:  # checked, though not stored: a malformed file is refused whole
            float(row["declared_monthly_revenue"] or 0)
        except ValueError:
            problems.append(f"{deal_path}:{line}: declared_monthly_revenue "
                            f"'{row['declared_monthly_revenue']}' is not a number")
        segment = row["business_segment"].strip() or None
        # the deal's segment and declared revenue are known only once the lead was won: the
        # segment stays on the opportunity, never on the account (as a feature or a
        # breakdown of all leads it would tell won from lost: 841 of 842 won had one, 0 of
        # 7,158 others), and the revenue (the seller's, not the deal's) is not kept
        opportunities.append({
            "opportunity_id": f"olist:{row['seller_id'].strip() or mql}",
            "account_id": f"olist:{mql}", "lead_id": mql, "stage": "Closed Won",
            "is_closed": True, "won": True, "closed_at": won,
            "owner": row["sr_id"].strip() or None, "sdr": row["sdr_id"].strip() or None,
            "segment": segment, "source": "olist",
        })
    if problems:
        raise InputError(
            f"{directory}: {len(problems)} problem(s) in the Olist files; nothing was imported",
            problems=problems[:20],
        )
    return OlistData(accounts, leads, opportunities)
