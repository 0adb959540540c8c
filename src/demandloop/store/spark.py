"""The Spark engine's edge: one Spark session per process, a Parquet lake's tables
registered in it as views named like the store's tables, and the store's DuckDB queries
run on it (:class:`SparkSql`).

Spark is optional (``pip install "demandloop[spark]"``) and needs Java 17 for a local
master. The session always runs in UTC: the store keeps naive UTC times, and a session in
another zone would move every day boundary and window edge.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from demandloop.config.compute import SparkSettings
from demandloop.errors import UsageError
from demandloop.store.dialect import to_spark
from demandloop.store.parquet import DAY, read_manifest
from demandloop.store.schema import DATA_TABLES, NOT_ANALYSED

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: what a session is configured with unless [compute.spark] options say otherwise
DEFAULTS = {
    "spark.ui.enabled": "false",
    # stage progress bars on stderr would run through the command's own output
    "spark.ui.showConsoleProgress": "false",
    # a few hundred shuffle tasks suit a cluster; on one machine each costs more than its rows
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "2g",
    # Parquet written by DuckDB holds timestamps without a zone: read them as such
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    # results come back to the driver through Arrow, not row by row
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


#: of :data:`DEFAULTS`, those a Spark Connect session may set (the rest are the server's,
#: fixed when it started)
CONNECT_DEFAULTS = ("spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled",
                    "spark.sql.parquet.inferTimestampNTZ.enabled")


def session(settings: SparkSettings) -> SparkSession:
    """The process's Spark session for *settings* (started on first use). A master
    ``sc://...`` is a Spark Connect server: the session is a client of it, and the job runs
    in the server's driver."""
    remote = settings.master.startswith("sc://")
    try:
        from pyspark.sql import SparkSession
        if remote and importlib.util.find_spec("grpc") is None:  # Connect's client needs it
            raise ImportError("grpc")
    except ImportError:
        raise UsageError("the Spark engine needs pyspark" + (" with Spark Connect's client"
                                                             if remote else ""),
                         hint='pip install "demandloop[spark]"') from None
    if settings.master.startswith("local") and not _java():
        raise UsageError("the Spark engine needs Java 17 to run a local master",
                         hint="install it (Debian: apt-get install openjdk-17-jre-headless) "
                         "or set JAVA_HOME")
    builder: Any = SparkSession.builder.appName(settings.app_name)
    builder = builder.remote(settings.master) if remote else builder.master(settings.master)
    defaults = {k: v for k, v in DEFAULTS.items() if not remote or k in CONNECT_DEFAULTS}
    for key, value in {**defaults, **settings.options,
                       "spark.sql.session.timeZone": "UTC"}.items():
        builder = builder.config(key, value)
    spark: SparkSession = builder.getOrCreate()
    if remote:
        # a Connect server may already hold a session of this client's with other settings
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        # said on every upload of rows (createDataFrame), about an argument nobody passed
        warnings.filterwarnings("ignore", message="'verifySchema' is ignored",
                                category=UserWarning)
    else:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and Path(home, "bin", "java").is_file()))


def register_lake(spark: SparkSession, lake: Path) -> str:
    """Register every table of the lake at *lake* as a temporary view; returns the lake's
    workspace id."""
    manifest = read_manifest(lake)
    if manifest.layout != "lake":
        raise UsageError(f"{lake} is an export, not a lake",
                         hint="write one with 'demandloop export --format lake'")
    for table in DATA_TABLES:
        if table not in manifest.tables and table in NOT_ANALYSED:
            continue
        if table not in manifest.tables:
            raise UsageError(f"{lake}: table '{table}' is missing from the lake",
                             hint="write the lake again with 'demandloop export --format "
                             "lake'")
        path, partitioned = manifest.location(lake, table)
        # a partitioned table is read from its folder: Spark finds the day= partitions
        frame = spark.read.parquet(str(path))
        (frame.drop(DAY) if partitioned else frame).createOrReplaceTempView(table)
    return manifest.workspace_id


class SparkSql:
    """:class:`demandloop.store.dialect.SqlEngine` on a Spark session whose lake is
    registered (:func:`register_lake`): each query is transpiled by
    :func:`demandloop.store.dialect.to_spark`, rows come back through Arrow."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def query(self, sql: str) -> pa.Table:
        return self.spark.sql(to_spark(sql)).toArrow()

    def view(self, name: str, sql: str) -> None:
        self.spark.sql(to_spark(sql)).createOrReplaceTempView(name)

    def put(self, name: str, table: pa.Table) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema

        with warnings.catch_warnings():  # Connect's client: "'verifySchema' is ignored"
            warnings.simplefilter("ignore", UserWarning)
            # an empty table is given its schema: Spark Connect infers none from no rows
            frame = (self.spark.createDataFrame(table) if table.num_rows else
                     self.spark.createDataFrame([], from_arrow_schema(table.schema)))
        frame.createOrReplaceTempView(name)

    def write(self, sql: str, folder: Path) -> None:
        self.spark.sql(to_spark(sql)).write.mode("error").parquet(str(folder))


def lake_sql(settings: SparkSettings, lake: Path) -> SparkSql:
    """The session for *settings* with the lake at *lake* registered, as a
    :class:`SparkSql`."""
    spark = session(settings)
    register_lake(spark, lake)
    return SparkSql(spark)
