"""Errors of the SQL layer: each says what went wrong in the user's terms, never in DuckDB's."""

from __future__ import annotations

__all__ = ["ReadOnlySqlError", "SqlError", "UnsupportedSqlError"]


class SqlError(Exception):
    """A query could not run; the message is one line, fit for a CLI."""


class UnsupportedSqlError(SqlError):
    """Valid Trino SQL that the embedded engine cannot run; names the construct and an equivalent."""

    def __init__(self, construct: str, suggestion: str | None = None) -> None:
        self.construct = construct
        self.suggestion = suggestion
        msg = f"{construct} is not supported on the embedded engine"
        super().__init__(f"{msg}; {suggestion}" if suggestion else msg)


class ReadOnlySqlError(SqlError):
    """DDL/DML sent to the embedded engine, which only reads: tables are written by the pipeline."""

    def __init__(self, statement: str) -> None:
        self.statement = statement
        super().__init__(
            f"{statement} statements are rejected: the embedded engine is read-only "
            "(tables are written by the pipeline through pyiceberg; use Trino for DDL/DML)"
        )
