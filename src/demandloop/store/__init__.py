"""The embedded store: DuckDB schema, migrations, the single writer, Parquet export/import."""

from demandloop.store.db import Store
from demandloop.store.parquet import export_parquet, import_parquet
from demandloop.store.schema import DATA_TABLES, SCHEMA_VERSION

__all__ = ["DATA_TABLES", "SCHEMA_VERSION", "Store", "export_parquet", "import_parquet"]
