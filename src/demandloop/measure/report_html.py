"""One self-contained HTML report: funnel, attribution by model, demand vs capture, scorecard.

Charts are inline SVG drawn here rather than by a plotting library: the file must open
anywhere with no network and no script (a report is mailed and archived), stay small, and
keep its numbers as searchable text. Everything is escaped; nothing is fetched.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

import pandas as pd

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777",
           "#65a30d", "#9ca3af")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#111827;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #f3f4f6;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f9fafb}
.alarm{background:#fef2f2;border:1px solid #fca5a5;color:#991b1b;padding:.7rem 1rem;
border-radius:6px;font-weight:600}
.ok{background:#f0fdf4;border:1px solid #86efac;color:#166534;padding:.7rem 1rem;
border-radius:6px}.muted{color:#6b7280;font-size:.85rem}svg text{font-size:11px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return _e(v)


def table(df: pd.DataFrame, limit: int = 50) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in df.head(limit).itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def funnel_chart(row: dict[str, Any], stages: tuple[str, ...]) -> str:
    """Horizontal bars, one per stage, with the count and the rate from the stage above."""
    top = max(float(row.get(stages[0], 0) or 0), 1.0)
    h, out = 34, []
    for i, s in enumerate(stages):
        n = float(row.get(s, 0) or 0)
        w = 620 * n / top
        rate = "" if i == 0 else (f" ({n / float(row[stages[i - 1]]):.0%} of {stages[i - 1]})"
                                  if row.get(stages[i - 1]) else "")
        out.append(f'<rect x="130" y="{i * h + 4}" width="{w:.1f}" height="{h - 10}" '
                   f'fill="{PALETTE[0]}" opacity="{1 - i * 0.1:.2f}"/>'
                   f'<text x="120" y="{i * h + 21}" text-anchor="end">{_e(s)}</text>'
                   f'<text x="{136 + w:.1f}" y="{i * h + 21}">{int(n):,}{_e(rate)}</text>')
    return (f'<svg role="img" aria-label="funnel" width="1000" height="{len(stages) * h + 8}">'
            + "".join(out) + "</svg>")


def grouped_bars(df: pd.DataFrame, label: str, series: list[str], title: str) -> str:
    """Horizontal grouped bars: one group per row of *df*, one bar per series."""
    peak = max(float(df[series].max().max()), 1e-9) if len(df) else 1.0
    bar, gap = 7, 8
    group = bar * len(series) + gap
    out = []
    for i, d in enumerate(df.to_dict("records")):
        y0 = i * group + 24
        out.append(f'<text x="150" y="{y0 + group / 2}" text-anchor="end">'
                   f'{_e(d[label])}</text>')
        for k, s in enumerate(series):
            v = max(float(d[s]), 0.0)
            out.append(f'<rect x="158" y="{y0 + k * bar}" width="{600 * v / peak:.1f}" '
                       f'height="{bar - 1}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f"<title>{_e(d[label])}, {_e(s)}: {v:,.2f}</title></rect>")
    legend = "".join(f'<rect x="{158 + k * 130}" y="4" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/><text x="{172 + k * 130}" y="13">'
                     f"{_e(s)}</text>" for k, s in enumerate(series))
    return (f'<svg role="img" aria-label="{_e(title)}" width="1000" '
            f'height="{len(df) * group + 34}">{legend}{"".join(out)}</svg>')


def trend_chart(series: pd.DataFrame, demand: tuple[str, ...], capture: tuple[str, ...]
                ) -> str:
    """Weekly lines, each indexed to its own mean = 100; demand solid, capture dashed."""
    cols = [c for c in (*demand, *capture) if c in series and series[c].sum() > 0]
    if len(series) < 2 or not cols:
        return '<p class="muted">not enough weeks to draw trends</p>'
    idx = series[cols] / series[cols].mean() * 100
    hi = max(float(idx.max().max()), 150.0)
    w, h, left, top = 760, 260, 40, 20
    xs = [left + w * i / (len(idx) - 1) for i in range(len(idx))]
    out = [f'<line x1="{left}" y1="{top + h - h * 100 / hi:.1f}" x2="{left + w}" '
           f'y2="{top + h - h * 100 / hi:.1f}" stroke="#d1d5db" stroke-dasharray="2 3"/>',
           f'<text x="4" y="{top + h - h * 100 / hi + 4:.1f}">100</text>']
    for k, c in enumerate(cols):
        pts = " ".join(f"{x:.1f},{top + h - h * float(v) / hi:.1f}"
                       for x, v in zip(xs, idx[c], strict=True))
        dash = ' stroke-dasharray="6 3"' if c in capture else ""
        colour = PALETTE[k % len(PALETTE)]
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                   f'stroke-width="2"{dash}><title>{_e(c)}</title></polyline>'
                   f'<text x="{left + w + 8}" y="{top + 14 * k + 10}" fill="{colour}">'
                   f'{_e(c)}{" (capture)" if c in capture else ""}</text>')
    first, last = series.index[0], series.index[-1]
    out.append(f'<text x="{left}" y="{top + h + 16}">{_e(f"{first:%Y-%m-%d}")}</text>'
               f'<text x="{left + w}" y="{top + h + 16}" text-anchor="end">'
               f'{_e(f"{last:%Y-%m-%d}")}</text>')
    return f'<svg role="img" aria-label="demand vs capture" width="1000" height="310">' \
           f'{"".join(out)}</svg>'


def render(data: dict[str, Any]) -> str:
    """The report page. *data*: workspace, funnel (DataFrame, one row), funnel_by_channel,
    stages, attribution (DataFrame), models, health (dict), series (DataFrame), demand,
    capture, pipeline (dict), scorecard (dict)."""
    h, sc, pipe = data["health"], data["scorecard"], data["pipeline"]
    banner = (f'<p class="alarm">Alarm: {_e(h["verdict"])}</p>' if h["alarm"]
              else f'<p class="ok">{_e(h["verdict"])}</p>')
    trends = pd.DataFrame([{"indicator": k, "kind": "capture" if k in data["capture"] else
                            "demand", "tau": v["tau"], "p": v["p"], "change": v["change"],
                            "direction": v["direction"]} for k, v in h["trends"].items()])
    s = pipe["summary"]
    summary = pd.DataFrame([
        {"measure": "opportunities", "value": s["opportunities"]},
        {"measure": "pipeline", "value": s["amount"]},
        {"measure": "won revenue", "value": s["won"]},
        {"measure": f"demand-influenced opportunities ({s['window_days']} d)",
         "value": s["demand_influenced"]["opportunities"]},
        {"measure": "demand-influenced pipeline", "value": s["demand_influenced"]["amount"]},
    ])
    models = data["models"]
    attribution = data["attribution"]
    parts = [
        f"<h1>demandloop report: {_e(data['workspace'])}</h1>",
        f'<p class="muted">generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>',
        "<h2>Funnel</h2>",
        funnel_chart(data["funnel"].iloc[0].to_dict(), data["stages"])
        if len(data["funnel"]) else "<p>no accounts yet</p>",
        table(data["funnel_by_channel"]),
        "<h2>Attribution by model (account level, opportunities)</h2>",
        grouped_bars(attribution, "channel", list(models), "attribution"),
        table(attribution),
        "<h2>Pipeline sourced vs influenced</h2>", table(summary),
        table(pipe["channels"]),
        "<h2>Demand vs capture</h2>", banner,
        trend_chart(data["series"], data["demand"], data["capture"]), table(trends),
        "<h2>Program scorecard: demand gen vs lead gen</h2>",
        f"<p>Published: {_e(sc['published_verdict'])}. With this workspace's measured "
        f"criteria: {_e(sc['blended_verdict'])}.</p>",
        table(sc["card"]),
        table(pd.DataFrame([{"segment": k, "favour": v["favour"],
                             **{f"{p} total": t for p, t in v["totals"].items()}}
                            for k, v in sc["segments"].items()])),
    ]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>demandloop report: {_e(data['workspace'])}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
