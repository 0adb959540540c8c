"""DataFrames to Arrow with explicit column types, for registering with DuckDB.

pandas types an all-null column as float64, which DuckDB would then read as DOUBLE; naming
each column's type (VARCHAR unless said otherwise) keeps inserts into typed tables working
whatever the data happens to hold.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def typed_table(df: pd.DataFrame, types: dict[str, pa.DataType]) -> pa.Table:
    """*df* as Arrow; columns not in *types* are strings; missing values become nulls."""
    schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in df.columns])
    clean = df.astype(object).where(df.notna(), None)
    return pa.Table.from_pandas(clean, schema=schema, preserve_index=False)
