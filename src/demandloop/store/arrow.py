"""DataFrames to Arrow with explicit column types, for registering with DuckDB, and DuckDB
results to Arrow.

pandas types an all-null column as float64, which DuckDB would then read as DOUBLE; naming
each column's type (VARCHAR unless said otherwise) keeps inserts into typed tables working
whatever the data happens to hold.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa


def typed_table(df: pd.DataFrame, types: dict[str, pa.DataType]) -> pa.Table:
    """*df* as Arrow; columns not in *types* are strings; missing values become nulls."""
    schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in df.columns])
    return pa.Table.from_arrays([_column(df[f.name], f.type) for f in schema], schema=schema)


def _column(values: pd.Series, kind: pa.DataType) -> pa.Array:
    """One column as *kind*; NaN, NaT, None and pd.NA become nulls.

    Straight from the column when Arrow converts it (turning every float of a 600k-row
    frame into a Python object first was 25x slower); through objects when it cannot, as
    for an all-null (float NaN) column meant as timestamps or lists.
    """
    try:
        return pa.array(values, type=kind, from_pandas=True)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        clean = values.astype(object).where(values.notna(), None)
        return pa.array(clean, type=kind, from_pandas=True)


def fetched(result: Any) -> pa.Table:
    """A DuckDB result (a cursor after ``execute``) as an Arrow table, on every duckdb the
    project allows: ``to_arrow_table`` is 1.5's name for 1.4's (now deprecated)
    ``fetch_arrow_table``."""
    table: pa.Table = (getattr(result, "to_arrow_table", None) or result.fetch_arrow_table)()
    return table
