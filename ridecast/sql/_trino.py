"""The production engine: Trino over the JDBC Iceberg catalog. SQL is sent exactly as written.

The server is ``sql.trino_url`` (a cluster) or, when that is unset, the embedded single-node Trino that
``ridecast up --trino`` runs over the same catalog (:mod:`ridecast.stack.trino`).

Trino speaks the dialect the README's queries are written in, so nothing is translated here; the
catalog and user come from settings (``sql.trino_catalog`` / ``sql.trino_user``), never from code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa

from ridecast.sql._errors import SqlError
from ridecast.sql._result import QueryResult

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["TrinoEngine"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double": pa.float64(),
    "varchar": pa.string(),
    "char": pa.string(),
    "date": pa.date32(),
    "varbinary": pa.binary(),
}


def _arrow_type(type_code: object) -> pa.DataType | None:
    base = str(type_code or "").split("(", 1)[0].strip().lower()
    return _ARROW_TYPES.get(base)


def _map_array(values: list) -> pa.Array:
    """Trino maps arrive as dicts; pyarrow would infer a struct of their keys, so build an Arrow map."""
    keys = [k for v in values if v for k in v]
    items = [x for v in values if v for x in v.values()]
    key_type = pa.array(keys).type if keys else pa.string()
    item_type = pa.array(items).type if items else pa.null()
    return pa.array([None if v is None else list(v.items()) for v in values], type=pa.map_(key_type, item_type))


def _to_arrow(description: list, rows: list[list]) -> pa.Table:
    names = [d[0] for d in description or []]
    arrays = []
    for i, d in enumerate(description or []):
        values = [r[i] for r in rows]
        typ = _arrow_type(d[1])
        try:
            if str(d[1] or "").lower().startswith("map("):
                arrays.append(_map_array(values))
                continue
            arrays.append(pa.array(values, type=typ) if typ is not None else pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})


def _embedded_trino_url(settings: "Settings") -> str | None:
    """The server `ridecast up --trino` started, if it runs (a configured URL always wins)."""
    from ridecast.stack.trino import trino_url

    return trino_url(settings)


class TrinoEngine:
    """A DB-API client per query (the client is cheap; Trino keeps the state server-side)."""

    name = "trino"

    def __init__(self, settings: "Settings") -> None:
        url = settings.sql.trino_url or _embedded_trino_url(settings)
        if not url:
            raise SqlError("the trino engine needs sql.trino_url (env RIDECAST_SQL__TRINO_URL=http://host:8080) "
                           "or the embedded server: `ridecast up --trino`")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SqlError(f"sql.trino_url {url!r} must look like http(s)://host:port")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 8080)
        self._user = settings.sql.trino_user
        self._catalog = settings.sql.trino_catalog

    def execute(self, sql: str) -> QueryResult:
        import trino.dbapi
        import trino.exceptions

        start = time.perf_counter()
        conn = trino.dbapi.connect(
            host=self._host,
            port=self._port,
            user=self._user,
            catalog=self._catalog,
            http_scheme=self._scheme,
            source="ridecast",
        )
        try:
            cur = conn.cursor()
            cur.execute(sql)
            rows = cur.fetchall()
            table = _to_arrow(cur.description, rows)
        except trino.exceptions.TrinoQueryError as exc:
            raise SqlError(f"trino: {exc.error_name}: {exc.message}") from None
        except (trino.exceptions.Error, trino.exceptions.HttpError) as exc:
            raise SqlError(f"trino: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        except OSError as exc:
            raise SqlError(f"trino at {self._scheme}://{self._host}:{self._port} unreachable: {exc}") from None
        finally:
            conn.close()
        return QueryResult(table, self.name, time.perf_counter() - start, sql)
