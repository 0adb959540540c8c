"""Charts as server-side SVG: horizontal bars (grouped when there are several series) and
lines over time.

Why hand-written rather than a charting library: the dashboard must work with no internet,
no CDN and no Node build, and under a strict Content-Security-Policy (no inline script, no
eval). uPlot or Vega-Lite would add a JavaScript bundle to vendor and run; these charts are
a hundred lines of SVG the server writes, scale with the page (``viewBox``), print, and need
no script at all. Each has a ``<title>`` and ``<desc>`` for screen readers, and the page
shows the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

#: colour-blind-safe (Okabe-Ito), in the order series take them
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}".rstrip("0").rstrip(".")


def bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
         width: int = 720) -> Markup:
    """Horizontal bars, one group per label, one bar per series (with a legend when there
    are several)."""
    names = list(series)
    row = 8 + 14 * len(names)
    left, right, top = 150, 70, 10 + (18 if len(names) > 1 else 0)
    height = top + row * len(labels) + 10
    values = [float(v or 0) for s in series.values() for v in s]
    high = max([*values, 0.0]) or 1.0
    span = width - left - right
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-labelledby="t-{id(labels)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="t-{id(labels)}">{escape(title)}</title>',
           f"<desc>{escape(title)}: {len(labels)} rows, {len(names)} series</desc>"]
    if len(names) > 1:
        for i, name in enumerate(names):
            x = left + i * (span // max(len(names), 1))
            out.append(f'<rect x="{x}" y="2" width="10" height="10" '
                       f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                       f'<text x="{x + 14}" y="11" class="legend">{escape(name)}</text>')
    for r, label in enumerate(labels):
        y0 = top + r * row
        out.append(f'<text x="{left - 6}" y="{y0 + row / 2 + 4:.0f}" text-anchor="end" '
                   f'class="label">{escape(str(label)[:24])}</text>')
        for i, name in enumerate(names):
            v = float(series[name][r] or 0)
            w = max(v / high * span, 0.0)
            y = y0 + 4 + i * 14
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="11" '
                       f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(name)} '
                       f'{escape(str(label))}: {_fmt(v)}</title></rect>'
                       f'<text x="{left + w + 4:.1f}" y="{y + 9}" class="value">'
                       f"{_fmt(v)}</text>")
    out.append("</svg>")
    return Markup("".join(out))


def lines(title: str, x: Sequence[str], series: dict[str, Sequence[float | None]],
          width: int = 720, height: int = 240) -> Markup:
    """One line per series over the *x* labels (weeks), with a legend and the first and
    last labels on the axis."""
    names = list(series)
    left, right, bottom = 40, 10, 24
    top = 14 + 12 * ((len(names) + 3) // 4)  # below the legend's rows
    values = [float(v) for s in series.values() for v in s if v is not None]
    high = max([*values, 0.0]) or 1.0
    span_x, span_y = width - left - right, height - top - bottom
    step = span_x / max(len(x) - 1, 1)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-labelledby="t-{id(x)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="t-{id(x)}">{escape(title)}</title>',
           f"<desc>{escape(title)}: {len(x)} points, {len(names)} series</desc>",
           f'<line x1="{left}" y1="{top + span_y}" x2="{left + span_x}" y2="{top + span_y}" '
           f'class="axis"/>',
           f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="value">'
           f"{_fmt(high)}</text>",
           f'<text x="{left - 4}" y="{top + span_y}" text-anchor="end" class="value">0</text>']
    if x:
        out.append(f'<text x="{left}" y="{height - 6}" class="value">{escape(x[0])}</text>'
                   f'<text x="{left + span_x}" y="{height - 6}" text-anchor="end" '
                   f'class="value">{escape(x[-1])}</text>')
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        points = [f"{left + j * step:.1f},{top + span_y - float(v) / high * span_y:.1f}"
                  for j, v in enumerate(series[name]) if v is not None]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                   f'points="{" ".join(points)}"><title>{escape(name)}</title></polyline>')
        lx = left + (i % 4) * (span_x // 4)
        ly = 12 + (i // 4) * 12
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{ly - 4}" class="legend">{escape(name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def steps(title: str, moments: Sequence[tuple[str, str]], levels: Sequence[str],
          width: int = 720, height: int = 200) -> Markup:
    """A step line through *levels* (bottom to top) over *moments* ((time, level), oldest
    first): an account's stage history."""
    left, right, top, bottom = 90, 20, 10, 24
    span_x, span_y = width - left - right, height - top - bottom
    n = max(len(levels) - 1, 1)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-labelledby="t-{id(moments)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="t-{id(moments)}">{escape(title)}</title>',
           f"<desc>{escape(title)}: {len(moments)} changes</desc>"]
    for i, level in enumerate(levels):
        y = top + span_y - i / n * span_y
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + span_x}" y2="{y:.1f}" '
                   f'class="axis"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'class="label">{escape(level)}</text>')
    known = [(t, levels.index(v)) for t, v in moments if v in levels]
    if known:
        step = span_x / max(len(known), 1)
        points = []
        for j, (_, i) in enumerate(known):
            y = top + span_y - i / n * span_y
            points += [f"{left + j * step:.1f},{y:.1f}", f"{left + (j + 1) * step:.1f},{y:.1f}"]
        out.append(f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2.5" '
                   f'points="{" ".join(points)}"/>')
        for j, (t, i) in enumerate(known):
            y = top + span_y - i / n * span_y
            out.append(f'<circle cx="{left + j * step:.1f}" cy="{y:.1f}" r="4" '
                       f'fill="{PALETTE[0]}"><title>{escape(t)}: {escape(levels[i])}'
                       f'</title></circle>')
        out.append(f'<text x="{left}" y="{height - 6}" class="value">'
                   f"{escape(known[0][0])}</text>")
    out.append("</svg>")
    return Markup("".join(out))
