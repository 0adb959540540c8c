"""One query text for both engines: DuckDB SQL, transpiled for Spark by sqlglot.

resolve's queries are written once, in DuckDB's dialect, and run on DuckDB as they are.
:func:`to_spark` turns one into Spark SQL, and refuses what it cannot carry over exactly
rather than letting sqlglot pass it through: sqlglot copies a function it does not know
(``epoch_us``, ``hash``) and an ``ASOF`` join into Spark SQL unchanged, so the query would
fail on the cluster, or, worse, run with another meaning.

Only the functions in :data:`SPARK_FUNCTIONS` are rewritten by hand; every other function
must be one sqlglot knows in both dialects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from demandloop.errors import UsageError


def _epoch_us(args: list[exp.Expression]) -> exp.Expression:
    # Spark's unix_micros takes a zoned TIMESTAMP; the store's times are naive UTC, and the
    # session's zone is always UTC (store.spark), so the cast moves nothing
    return exp.Anonymous(this="UNIX_MICROS", expressions=[
        exp.Cast(this=args[0], to=exp.DataType.build("timestamp", dialect="spark"))])


def _hash(args: list[exp.Expression]) -> exp.Expression:
    # a join key within one engine only (a value never leaves the query): 64 bits, as
    # DuckDB's hash, where Spark's own hash() has 32 and would collide among a few
    # hundred thousand keys
    return exp.Anonymous(this="XXHASH64", expressions=args)


#: DuckDB functions sqlglot leaves as they are -> their Spark equivalent
SPARK_FUNCTIONS: dict[str, Callable[[list[exp.Expression]], exp.Expression]] = {
    "EPOCH_US": _epoch_us,
    "HASH": _hash,
}


def to_spark(sql: str) -> str:
    """*sql* (DuckDB's dialect) as Spark SQL; raises :class:`UsageError` on a construct
    that has no exact translation (an ``ASOF`` join, a function neither sqlglot nor
    :data:`SPARK_FUNCTIONS` knows)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for join in tree.find_all(exp.Join):
        method = str(join.args.get("method") or "").upper()
        if method in ("ASOF", "POSITIONAL"):
            raise UsageError(f"this query has a {method} join, which Spark SQL has no form of",
                             hint="write it with a window instead")

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous):
            name = str(node.name).upper()
            if name not in SPARK_FUNCTIONS:
                raise UsageError(f"the function {name}() has no known Spark form",
                                 hint="add it to store.dialect.SPARK_FUNCTIONS")
            return SPARK_FUNCTIONS[name](list(node.expressions))
        return node

    return tree.transform(rewrite).sql("spark", unsupported_level=ErrorLevel.RAISE)


def literal(text: str) -> str:
    """*text* as a SQL string literal (for SQL built as text: a view takes no parameters,
    nor does a query for another engine)."""
    return "'" + text.replace("'", "''") + "'"


def inline(sql: str, params: dict[str, Any]) -> str:
    """*sql* with each ``$name`` parameter replaced by its value as a literal (a query for
    another engine carries no parameters): strings quoted, numbers as they are."""
    def value_of(m: re.Match[str]) -> str:
        value = params[m.group(1)]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"cannot inline {m.group(1)}={value!r}")
        return literal(value) if isinstance(value, str) else str(value)

    return re.sub(r"\$([A-Za-z_]\w*)", value_of, sql)


class SqlEngine(Protocol):
    """An engine that runs the store's queries written in DuckDB's dialect (see
    :func:`to_spark`) over its own copy of the tables: what resolve needs to run its
    event scans and touches elsewhere. Queries carry no parameters (:func:`inline`)."""

    def query(self, sql: str) -> pa.Table:
        """The rows of *sql*, on the driver."""
        ...

    def view(self, name: str, sql: str) -> None:
        """Name *sql* as a view the next queries read."""
        ...

    def put(self, name: str, table: pa.Table) -> None:
        """Make *table* (from the driver) a relation called *name*, over any of that name."""
        ...

    def write(self, sql: str, folder: Path) -> None:
        """Write the rows of *sql* as Parquet files in *folder* (which must not exist)."""
        ...
