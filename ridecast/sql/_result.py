"""What every engine returns, so callers and formatters never depend on which engine ran."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["QueryResult"]


@dataclass(frozen=True)
class QueryResult:
    """Rows as an Arrow table (types kept for CSV/JSON), plus which engine ran them and how long it took."""

    table: pa.Table
    engine: str
    elapsed_s: float
    sql_sent: str = field(default="", repr=False)  # what the engine actually received (translated or not)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def rows(self) -> pa.Table:
        return self.table

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def to_pylist(self) -> list[dict]:
        return self.table.to_pylist()
