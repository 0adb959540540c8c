"""Settings of the analytics engine (``[compute]``): DuckDB, the embedded default, or Apache
Spark for a workspace that has outgrown one machine (see ``docs/scale.md``)."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, field_validator

from demandloop.config.base import Section as _Section

#: the master URLs Spark accepts (see Spark's "Master URLs"), and a Spark Connect server's
#: (``sc://host[:port][/;param=value...]``)
_MASTER = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]"
                     r"|spark://[\w.-]+:\d+(,[\w.-]+:\d+)*|yarn|k8s://\S+"
                     r"|sc://[\w.-]+(:\d+)?(/(;[\w.-]+=[^;\s]*)*)?")


class SparkSettings(_Section):
    """Where Spark runs and how it is configured (``[compute.spark]``)."""

    master: str = Field(
        "local[2]",
        description="Spark master: 'local[N]' (this machine, N cores), 'spark://host:7077' "
        "(a standalone cluster), 'yarn', 'k8s://https://host:port', or a Spark Connect "
        "server, 'sc://host:15002' (the job then runs in the server's driver).",
    )
    app_name: str = Field("demandloop", min_length=1, description="Spark application name.")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Spark configuration passed to the session as is, e.g. "
        "{'spark.executor.memory' = '8g'}.",
    )

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not _MASTER.fullmatch(value):
            raise ValueError(f"'{value}' is not a Spark master: use local[N], "
                             "spark://host:port, yarn, k8s://https://host:port or "
                             "sc://host:port (Spark Connect)")
        return value

    @field_validator("options")
    @classmethod
    def _spark_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key.startswith("spark."):
                raise ValueError(f"option '{key}' is not a Spark setting (they start "
                                 "with 'spark.')")
            if key == "spark.sql.session.timeZone":
                raise ValueError("spark.sql.session.timeZone is always UTC (the store "
                                 "keeps UTC times); leave it out")
        return value


#: the engines a computation may run on (see ``docs/scale.md``)
Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = get_args(Engine)


class ComputeSettings(_Section):
    """Which engine 'resolve' (a rebuild from the lake), 'score' and 'report
    funnel|health|pipeline|attribution|scorecard' run on (the other reports run on DuckDB)."""

    engine: Engine = Field(
        "duckdb",
        description="'duckdb' (embedded, the default) or 'spark' (reads the Parquet lake; "
        "install with pip install 'demandloop[spark]'). A command's --engine overrides it; "
        "the server's live rescore and the API always read the store.",
    )
    lake: str = Field(
        "lake",
        description="The Parquet lake Spark reads: 'demandloop export --format lake' writes "
        "it. A folder, relative to the workspace directory or absolute; on a cluster, one "
        "every executor sees at the same path (a shared or mounted file system).",
    )

    @field_validator("lake")
    @classmethod
    def _local(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"'{value}' is a URL: the lake is a folder (mount object "
                             "storage to reach it as one)")
        return value
    spark: SparkSettings = Field(default_factory=SparkSettings)  # type: ignore[arg-type]
