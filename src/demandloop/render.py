"""Rendering for the terminal edge: pandas frames as Rich tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # the frame's own module, imported by whoever made the frame
    pd = LazyModule("pandas")


def frame_table(df: pd.DataFrame, title: str, formats: dict[str, str] | None = None) -> Table:
    """A Rich table of *df*: numbers right-aligned, missing values blank, optional formats."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in df.columns:
        t.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col])
                     else "left")
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            fmt = (formats or {}).get(str(col))
            missing = v is None or (isinstance(v, float) and pd.isna(v))
            cells.append("" if missing else fmt.format(v) if fmt else str(v))
        t.add_row(*cells)
    return t
