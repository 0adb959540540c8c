"""One self-contained HTML report: funnel, attribution by model, demand vs capture, scorecard.

Charts are inline SVG drawn here rather than by a plotting library: the file must open
anywhere with no network and no script (a report is mailed and archived), stay small, and
keep its numbers as searchable text. Everything is escaped; nothing is fetched.

Layout: every chart is drawn in a ``viewBox`` and scales to the page, tables scroll inside
their own box, so the page never overflows its window, from a 390 px phone to a desktop.
Each demand indicator gets its own small chart with its own scale in its own units (one
shared index flattened every line but the most volatile one).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

import pandas as pd

from demandloop.measure.names import STAGES, attribution_note
from demandloop.measure.report_style import COLUMNS, CSS, PALETTE


def _e(value: Any) -> str:
    return html.escape(str(value))


def label(column: str) -> str:
    """A column's heading: a known label, a stage pair (``mql_to_mqa``: "MQL → MQA"), else
    ``snake_case`` made readable."""
    if column in COLUMNS:
        return COLUMNS[column][0]
    days = column.startswith("days_")
    a, _, b = column.removeprefix("days_").partition("_to_")
    if a in STAGES and b in STAGES:
        return ("Days " if days else "") + f"{COLUMNS[a][0]} → {COLUMNS[b][0]}"
    return column.replace("_", " ").capitalize().replace("Ai ", "AI ")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v: Any, kind: str, currency: str = "$") -> str:
    """*v* as a reader expects it: counts with separators, rates as %, money with the
    currency, never ``-0.00``."""
    text = _fmt(v, kind, currency)
    if text.startswith(("-", "+")) and not any(ch in "123456789" for ch in text):
        return text[1:]  # a value that rounds to zero has no sign
    return text


def _fmt(v: Any, kind: str, currency: str) -> str:
    if _missing(v):
        return ""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return _e(v)
    x = float(v)
    if kind == "count":
        return f"{x:,.0f}"
    if kind == "rate":
        return f"{x:.1%}"
    if kind == "signed_rate":
        return f"{x:+.0%}"
    if kind == "days":
        return f"{x:,.1f}"
    if kind == "money":
        return f"{'-' if x < 0 else ''}{_e(currency)}{abs(x):,.0f}"
    if kind == "ratio":
        return f"{x:,.2f}×"
    if kind == "p":
        return "<0.001" if x < 0.001 else f"{x:.3f}"
    if kind == "score":
        return f"{x:,.1f}"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def table(df: pd.DataFrame, currency: str = "$", limit: int = 50,
          kinds: dict[str, str] | None = None) -> str:
    """A readable table: labelled headings, formatted numbers, scrolling inside its box."""
    kinds = {**{c: k for c, (_, k) in COLUMNS.items()}, **(kinds or {})}
    cols = list(df.columns)
    head = "".join(f"<th>{_e(label(str(c)))}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{fmt(v, kinds.get(str(c), 'auto'), currency)}</td>"
                                     for c, v in zip(cols, row, strict=True)) + "</tr>"
                   for row in df.head(limit).itertuples(index=False))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}'
            "</tbody></table></div>")


def _svg(label_text: str, width: int, height: int, body: str, wide: bool = False) -> str:
    """A chart scaled to its box; a *wide* one keeps a legible size on a phone and scrolls
    inside its own box instead."""
    svg = (f'<svg role="img" aria-label="{_e(label_text)}" viewBox="0 0 {width} {height}" '
           f'preserveAspectRatio="xMinYMin meet">{body}</svg>')
    return f'<div class="scroll wide">{svg}</div>' if wide else svg


def funnel_chart(row: dict[str, Any], stages: tuple[str, ...]) -> str:
    """Horizontal bars, one per stage, with the count and the rate from the stage above."""
    top = max(float(row.get(stages[0], 0) or 0), 1.0)
    h, out = 34, []
    for i, s in enumerate(stages):
        n = float(row.get(s, 0) or 0)
        w = 520 * n / top
        rate = "" if i == 0 else (f" ({n / float(row[stages[i - 1]]):.0%} of "
                                  f"{label(stages[i - 1]).lower()})"
                                  if row.get(stages[i - 1]) else "")
        out.append(f'<rect x="110" y="{i * h + 4}" width="{w:.1f}" height="{h - 10}" '
                   f'fill="{PALETTE[0]}" opacity="{1 - i * 0.1:.2f}"/>'
                   f'<text x="100" y="{i * h + 21}" text-anchor="end">{_e(label(s))}</text>'
                   f'<text x="{116 + w:.1f}" y="{i * h + 21}">{int(n):,}{_e(rate)}</text>')
    return _svg("funnel", 860, len(stages) * h + 8, "".join(out), wide=True)


def grouped_bars(df: pd.DataFrame, group: str, series: list[str], title: str) -> str:
    """Horizontal grouped bars: one group per row of *df*, one bar per series."""
    peak = max(float(df[series].max().max()), 1e-9) if len(df) else 1.0
    bar, gap = 8, 10
    size = bar * len(series) + gap
    out = []
    for i, d in enumerate(df.to_dict("records")):
        y0 = i * size + 44
        out.append(f'<text x="150" y="{y0 + size / 2}" text-anchor="end">'
                   f"{_e(d[group])}</text>")
        for k, s in enumerate(series):
            v = max(float(d[s]), 0.0)
            out.append(f'<rect x="158" y="{y0 + k * bar}" width="{640 * v / peak:.1f}" '
                       f'height="{bar - 1}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f"<title>{_e(d[group])}, {_e(label(s))}: {v:,.2f}</title></rect>")
    legend = "".join(f'<rect x="{8 + k * 135}" y="6" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/><text x="{22 + k * 135}" y="15">'
                     f"{_e(label(s))}</text>" for k, s in enumerate(series))
    return _svg(title, 820, len(df) * size + 54, legend + "".join(out), wide=True)


def spark(values: pd.Series, name: str, colour: str, dashed: bool) -> str:
    """One indicator's weekly values on its own scale, with its real min and max."""
    v = [float(x) for x in values]
    lo, hi = min(v), max(v)
    span = (hi - lo) or 1.0
    w, h, left, top = 300, 90, 44, 10
    xs = [left + (w - left - 6) * i / max(len(v) - 1, 1) for i in range(len(v))]
    pts = " ".join(f"{x:.1f},{top + h - (h * (y - lo) / span):.1f}"
                   for x, y in zip(xs, v, strict=True))
    dash = ' stroke-dasharray="6 3"' if dashed else ""
    body = (f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#e5e7eb"/>'
            f'<line x1="{left}" y1="{top + h}" x2="{w}" y2="{top + h}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{top + 9}" text-anchor="end">{hi:,.0f}</text>'
            f'<text x="{left - 4}" y="{top + h}" text-anchor="end">{lo:,.0f}</text>'
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
            f"<title>{_e(label(name))}: {v[0]:,.0f} → {v[-1]:,.0f} a week</title></polyline>")
    return _svg(f"trend of {name}", w, h + 2 * top, body)


def trend_charts(series: pd.DataFrame, trends: dict[str, dict[str, Any]],
                 demand: tuple[str, ...], capture: tuple[str, ...]) -> str:
    """Small multiples: each indicator with data, in its own units and scale."""
    cols = [c for c in (*demand, *capture) if c in series and series[c].sum() > 0]
    if len(series) < 2 or not cols:
        return '<p class="muted">Not enough full weeks of data to draw trends yet.</p>'
    cards = []
    for k, c in enumerate(cols):
        t = trends.get(c, {})
        kind = "capture" if c in capture else "demand"
        cards.append(f'<div class="card"><h3>{_e(label(c))} <span class="muted">({kind}, '
                     f'{_e(t.get("direction", ""))})</span></h3>'
                     + spark(series[c], c, PALETTE[k % len(PALETTE)], c in capture)
                     + "</div>")
    first, last = series.index[0], series.index[-1]
    return (f'<p class="muted">Weekly counts, {first:%Y-%m-%d} to {last:%Y-%m-%d}; each chart '
            'has its own scale (axis: lowest and highest week).</p>'
            f'<div class="grid">{"".join(cards)}</div>')


def verdict_box(h: dict[str, Any]) -> str:
    """Red for the alarm, amber when demand falls, green when healthy, grey when unknown;
    indicators named as the charts name them."""
    if h["alarm"]:
        cls, text = "v-alarm", f"Alarm: {h['verdict']}"
    elif str(h["verdict"]).startswith("not enough"):
        cls, text = "v-unknown", h["verdict"]
    elif h.get("demand_falling") or h.get("capture_falling"):
        cls, text = "v-falling", h["verdict"]
    else:
        cls, text = "v-healthy", h["verdict"]
    for name in sorted(COLUMNS, key=len, reverse=True):
        if "_" in name:
            text = text.replace(name, label(name).lower())
    return f'<p class="verdict {cls}">{_e(text)}</p>'


def render(data: dict[str, Any]) -> str:
    """The report page. *data*: workspace, funnel (DataFrame, one row), funnel_by_channel,
    stages, attribution (DataFrame), models, health (dict), series (DataFrame), demand,
    capture, pipeline (dict), scorecard (dict), currency."""
    h, sc, pipe = data["health"], data["scorecard"], data["pipeline"]
    cur = data.get("currency", "$")
    trends = pd.DataFrame([{"indicator": label(k), "kind": "capture" if k in data["capture"]
                            else "demand", "tau": v["tau"], "p": v["p"], "change": v["change"],
                            "direction": v["direction"]} for k, v in h["trends"].items()])
    s = pipe["summary"]
    summary = pd.DataFrame([
        {"measure": "Opportunities", "value": fmt(s["opportunities"], "count")},
        {"measure": "Pipeline", "value": fmt(s["amount"], "money", cur)},
        {"measure": "Won revenue", "value": fmt(s["won"], "money", cur)},
        {"measure": f"Demand-influenced opportunities ({s['window_days']} days)",
         "value": fmt(s["demand_influenced"]["opportunities"], "count")},
        {"measure": "Demand-influenced pipeline",
         "value": fmt(s["demand_influenced"]["amount"], "money", cur)},
        *([{"measure": "Not counted: opportunities with no creation date",
            "value": fmt(s["undated"], "count")}] if s.get("undated") else []),
    ])
    models, attribution = data["models"], data["attribution"]
    card = sc["card"].assign(criterion=sc["card"]["criterion"].map(label)) \
        if "criterion" in sc["card"] else sc["card"]
    scores = {str(c): "score" for c in card.columns if c != "criterion"}
    parts = [
        f"<h1>demandloop report: {_e(data['workspace'])}</h1>",
        f'<p class="muted">Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from the '
        "workspace's touches, scores and opportunities.</p>",
        verdict_box(h),
        "<h2>Funnel</h2>",
        "<p>Accounts at each stage of the shared definition of quality (the same one sales "
        "routing reads): reached by any touch, engaged, with an MQL, qualified as an account "
        "(MQA), with an opportunity, won.</p>",
        funnel_chart(data["funnel"].iloc[0].to_dict(), data["stages"])
        if len(data["funnel"]) else "<p>No accounts yet.</p>",
        "<p>By channel of the account's first touch:</p>",
        table(data["funnel_by_channel"], cur),
        "<h2>Attribution by model</h2>",
        "<p>Opportunities credited to channels by each model, at account level (every touch "
        "of the buying committee counts). Last touch favours the channels that capture "
        "demand; Markov and Shapley measure what each channel adds to the journeys that "
        "convert, so demand generation gets its share.</p>",
        *([f'<p class="muted">{_e(note)}</p>'] if (note := attribution_note(
            attribution.to_dict("records"), list(models), level="account", outcome=None,
            measure="conversions")) else [grouped_bars(attribution, "channel", list(models),
                                                       "attribution"), table(attribution, cur)]),
        "<h2>Pipeline sourced vs influenced</h2>",
        "<p>Sourced: the account's first touch was this channel. Influenced: the channel "
        "touched the account within the window before the opportunity.</p>",
        table(summary, cur, kinds={"value": "text"}), table(pipe["channels"], cur),
        "<h2>Demand vs capture</h2>",
        "<p>Is demand being created, or is lead capture harvesting a shrinking pool? Each "
        "indicator's weekly trend is tested (Mann–Kendall, Theil–Sen); the alarm fires when "
        "most demand indicators fall while capture holds.</p>",
        verdict_box(h), trend_charts(data["series"], h["trends"], data["demand"],
                                     data["capture"]),
        table(trends, cur),
        "<h2>Program scorecard: demand gen vs lead gen</h2>",
        f"<p>Published criteria say: {_e(sc['published_verdict'])}. With this workspace's "
        f"measured criteria blended in: {_e(sc['blended_verdict'])}.</p>",
        table(card, cur, kinds=scores),
        table(pd.DataFrame([{"segment": label(k), "favour": label(v["favour"]),
                             **{f"{p}_total": t for p, t in v["totals"].items()}}
                            for k, v in sc["segments"].items()]), cur,
              kinds={f"{p}_total": "score" for p in ("demand_gen", "lead_gen")}),
    ]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>demandloop report: {_e(data['workspace'])}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
