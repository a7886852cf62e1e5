"""Appending the forecasting tables through pyiceberg, typed by the table contract (``iceberg_catalog.tables``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from iceberg_catalog.catalog import load_table, open_catalog

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression

    from ridecast.config import Settings

__all__ = ["append_frame", "read_table"]


def _arrow(table, df: pd.DataFrame) -> pa.Table:
    schema = table.schema().as_arrow()
    df = df.reindex(columns=[f.name for f in schema]).copy()
    for f in schema:
        if pa.types.is_timestamp(f.type):
            df[f.name] = pd.to_datetime(df[f.name], utc=True).astype("datetime64[us, UTC]")
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def append_frame(
    settings: "Settings", identifier: str, df: pd.DataFrame, replace: "BooleanExpression | None" = None
) -> int:
    """Append ``df`` (columns by name) in one commit; with ``replace``, overwrite the rows it matches atomically."""
    table = load_table(open_catalog(settings), identifier)
    if df.empty and replace is None:
        return 0
    arrow = _arrow(table, df)
    if replace is not None:
        import warnings

        with warnings.catch_warnings():  # "Delete operation did not match any records": first write, expected
            warnings.simplefilter("ignore", UserWarning)
            table.overwrite(arrow, overwrite_filter=replace)
    else:
        table.append(arrow)
    return len(df)


def read_table(settings: "Settings", identifier: str, row_filter=None,
               columns: tuple[str, ...] = ("*",)) -> pd.DataFrame:
    table = load_table(open_catalog(settings), identifier)
    kwargs = {"selected_fields": columns}
    if row_filter is not None:
        kwargs["row_filter"] = row_filter
    return table.scan(**kwargs).to_pandas()
