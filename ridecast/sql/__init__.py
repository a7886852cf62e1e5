"""Trino-dialect SQL over ridecast's Iceberg tables, on Trino in production or DuckDB on one machine.

>>> from ridecast.sql import run_sql
>>> run_sql("SELECT zone, sum(requests) FROM gold.zone_features GROUP BY 1").table  # doctest: +SKIP

The engine comes from settings (``sql.trino_url`` set: Trino; otherwise the embedded engine), so code and
SQL are the same in both places. See :mod:`ridecast.sql._translate` for what the embedded engine rewrites.
"""

from ridecast.sql._engines import ENGINES, Engine, EngineName, EngineSpec, get_engine, run_sql
from ridecast.sql._errors import ReadOnlySqlError, SqlError, UnsupportedSqlError
from ridecast.sql._output import FORMATS, OutputFormat, rich_table, summary_line, write_result
from ridecast.sql._result import QueryResult
from ridecast.sql._tables import TableStats, table_stats
from ridecast.sql._translate import METADATA_TABLES, Translation, translate

__all__ = [
    "ENGINES",
    "FORMATS",
    "METADATA_TABLES",
    "Engine",
    "EngineName",
    "EngineSpec",
    "OutputFormat",
    "QueryResult",
    "ReadOnlySqlError",
    "SqlError",
    "TableStats",
    "Translation",
    "UnsupportedSqlError",
    "get_engine",
    "rich_table",
    "run_sql",
    "summary_line",
    "table_stats",
    "translate",
    "write_result",
]
