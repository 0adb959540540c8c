"""Rendering for the terminal edge: pandas frames as Rich tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # the frame's own module, imported by whoever made the frame
    pd = LazyModule("pandas")


def frame_table(df: pd.DataFrame, title: str, formats: dict[str, str] | None = None,
                width: int | None = None) -> Table:
    """A Rich table of *df*: numbers right-aligned, missing values blank, lists joined,
    optional formats. Given the terminal's *width*, the right-most columns that do not fit
    are left out (the caption names them) rather than every column squeezed to a sliver;
    what remains wraps instead of being cut to "…"."""
    cells = [[_cell(v, (formats or {}).get(str(col))) for col, v in zip(df.columns, row,
                                                                         strict=True)]
             for row in df.itertuples(index=False)]
    columns = [str(c) for c in df.columns]
    keep = len(columns)
    if width:
        need = [max([len(c), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)]
        while keep > 1 and sum(need[:keep]) + 1 > width:
            keep -= 1
    hidden = columns[keep:]
    caption = (f"not shown, too wide for this terminal: {', '.join(hidden)} (widen it, or "
               "use --json)" if hidden else None)
    t = Table(title=title, title_justify="left", header_style="bold", caption=caption,
              caption_justify="left")
    for col in df.columns[:keep]:
        t.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col])
                     else "left", overflow="fold")
    for row in cells:
        # as Text, not markup: a value such as "/blog/[slug]" or "[/x]" is data (as a
        # string Rich read it as tags: it lost the tag, or failed on an unmatched one)
        t.add_row(*(Text(c) for c in row[:keep]))
    return t


def _cell(v: Any, fmt: str | None) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v)
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    return fmt.format(v) if fmt else str(v)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready rows: missing values become None (not NaN)."""
    clean = df.astype(object).where(df.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]
