"""The embedded engine: DuckDB in-process over the same Iceberg tables Trino reads in production.

DuckDB cannot attach a SQL (JDBC) catalog, so the catalog is listed through pyiceberg (the same code for
the SQLite and PostgreSQL catalogs) and each table becomes a view ``<catalog>.<ns>.<table>`` over
``iceberg_scan('<current metadata.json>')`` in an in-memory database named like Trino's catalog. Views are
refreshed before every query, so commits made since the last query are visible. Metadata tables and time
travel, which DuckDB's reader does not offer under Trino's syntax, are served from pyiceberg.

The avro and iceberg extensions are loaded straight from their wheels: nothing is installed into $HOME
and no network is needed.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from ridecast.sql._errors import SqlError, UnsupportedSqlError
from ridecast.sql._result import QueryResult
from ridecast.sql._translate import (
    INFORMATION_SCHEMA_VIEWS,
    MetadataRef,
    TimeTravelRef,
    suggestion_for,
    translate,
)

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from ridecast.config import Settings

__all__ = ["EmbeddedEngine", "extension_path", "trino_type_name"]

_EXTENSIONS = ("avro", "iceberg")  # avro first: iceberg needs it to read manifests
_MISSING_FN = re.compile(r"(?:Scalar|Aggregate|Table|Pragma)? ?Function with name (\w+) does not exist", re.I)
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist", re.I)


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file inside the ``duckdb-extension-<name>`` wheel for this DuckDB."""
    import duckdb

    module = importlib.import_module(f"duckdb_extension_{name}")
    base = Path(module.__file__).resolve().parent / "extensions"
    exact = base / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if exact.is_file():
        return exact
    found = sorted(base.glob(f"*/{name}.duckdb_extension"))
    if not found:
        raise SqlError(f"DuckDB extension {name!r} not found in its wheel: pip install duckdb-extension-{name}")
    return found[-1]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iceberg_type_sql(t) -> str:
    """Iceberg type -> SQL type name, only for typing expressions (integer division, result names)."""
    from pyiceberg import types as it

    mapping = {
        it.BooleanType: "BOOLEAN",
        it.IntegerType: "INTEGER",
        it.LongType: "BIGINT",
        it.FloatType: "REAL",
        it.DoubleType: "DOUBLE",
        it.StringType: "VARCHAR",
        it.DateType: "DATE",
        it.TimestampType: "TIMESTAMP",
        it.TimestamptzType: "TIMESTAMP WITH TIME ZONE",
        it.BinaryType: "VARBINARY",
        it.UUIDType: "UUID",
    }
    for cls, name in mapping.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, it.DecimalType):
        return f"DECIMAL({t.precision}, {t.scale})"
    return "UNKNOWN"


def trino_type_name(t) -> str:
    """Iceberg type -> the type name Trino's Iceberg connector shows (DESCRIBE, information_schema)."""
    from pyiceberg import types as it

    simple = {it.BooleanType: "boolean", it.IntegerType: "integer", it.LongType: "bigint", it.FloatType: "real",
              it.DoubleType: "double", it.StringType: "varchar", it.DateType: "date", it.TimeType: "time(6)",
              it.TimestampType: "timestamp(6)", it.TimestamptzType: "timestamp(6) with time zone",
              it.BinaryType: "varbinary", it.UUIDType: "uuid"}
    for cls, name in simple.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, it.DecimalType):
        return f"decimal({t.precision}, {t.scale})"
    if isinstance(t, it.FixedType):
        return "varbinary"
    if isinstance(t, it.ListType):
        return f"array({trino_type_name(t.element_type)})"
    if isinstance(t, it.MapType):
        return f"map({trino_type_name(t.key_type)}, {trino_type_name(t.value_type)})"
    if isinstance(t, it.StructType):
        return "row(" + ", ".join(f"{f.name} {trino_type_name(f.field_type)}" for f in t.fields) + ")"
    return str(t)


def _hugeint_to_bigint(table: pa.Table) -> pa.Table:
    """DuckDB sums BIGINT into HUGEINT (Arrow decimal128(38,0)); Trino returns bigint. Narrow when it fits."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.precision == 38 and f.type.scale == 0:
            try:
                table = table.set_column(i, f.name, pc.cast(table.column(i), pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return table


class EmbeddedEngine:
    """DuckDB over the pyiceberg catalog; one connection, one query at a time (DuckDB connections are not
    safe for concurrent use), read-only by construction (only SELECT-like statements are translated)."""

    name = "embedded"

    def __init__(self, settings: "Settings") -> None:
        self._settings = settings
        self._db = settings.sql.trino_catalog  # same catalog name as Trino, so the same SQL resolves
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._catalog: Catalog | None = None
        self._functions: frozenset[str] = frozenset()
        self._views: dict[tuple[str, str], str] = {}  # (ns, table) -> metadata location its view reads

    # -- setup -------------------------------------------------------------------------------------------
    def _connect(self) -> "duckdb.DuckDBPyConnection":
        if self._con is not None:
            return self._con
        import duckdb

        con = duckdb.connect(
            ":memory:",
            config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"},
        )
        for ext in _EXTENSIONS:
            con.execute(f"LOAD {_lit(str(extension_path(ext)))}")
        con.execute("SET TimeZone = 'UTC'")  # Trino sessions default to the server zone; ours is UTC
        con.execute(f"ATTACH ':memory:' AS {_q(self._db)}")
        self._functions = frozenset(
            r[0].lower() for r in con.execute("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()
        )
        self._con = con
        return con

    def _open_catalog(self) -> "Catalog":
        if self._catalog is None:
            from iceberg_catalog.catalog import open_catalog

            self._catalog = open_catalog(self._settings)
        return self._catalog

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._views.clear()

    # -- catalog -> views --------------------------------------------------------------------------------
    def _load_tables(self) -> dict[tuple[str, str], "Table"]:
        catalog = self._open_catalog()
        tables: dict[tuple[str, str], Table] = {}
        for ns in catalog.list_namespaces():
            for ident in catalog.list_tables(ns):
                ns_name, name = ".".join(ident[:-1]), ident[-1]
                tables[(ns_name, name)] = catalog.load_table(ident)
        return tables

    def _refresh_views(self, con: "duckdb.DuckDBPyConnection", tables: dict[tuple[str, str], "Table"]) -> None:
        for (ns, name), table in tables.items():
            loc = table.metadata_location
            if self._views.get((ns, name)) == loc:
                continue
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self._db)}.{_q(ns)}")
            con.execute(
                f"CREATE OR REPLACE VIEW {_q(self._db)}.{_q(ns)}.{_q(name)} AS "
                f"SELECT * FROM iceberg_scan({_lit(loc)})"
            )
            self._views[(ns, name)] = loc
        for gone in set(self._views) - set(tables):  # dropped from the catalog since the last query
            con.execute(f"DROP VIEW IF EXISTS {_q(self._db)}.{_q(gone[0])}.{_q(gone[1])}")
            del self._views[gone]

    def _schema(self, tables: dict[tuple[str, str], "Table"]) -> dict:
        out: dict[str, dict] = {}
        for (ns, name), table in tables.items():
            out.setdefault(ns, {})[name] = {f.name: _iceberg_type_sql(f.field_type) for f in table.schema().fields}
        return {self._db: out}

    @staticmethod
    def _table(tables: dict[tuple[str, str], "Table"], ns: str, name: str) -> "Table":
        try:
            return tables[(ns, name)]
        except KeyError:
            known = ", ".join(sorted(f"{n}.{t}" for n, t in tables)) or "none"
            raise SqlError(f"table {ns}.{name} not found in the catalog; known tables: {known}") from None

    def _metadata_arrow(self, table: "Table", kind: str) -> pa.Table:
        inspect = table.inspect
        if kind == "properties":
            props = table.properties
            return pa.table({"key": pa.array(list(props), pa.string()),
                             "value": pa.array(list(props.values()), pa.string())})
        if kind == "partitions" and table.current_snapshot() is None:
            return pa.table({"partition": pa.array([], pa.string()), "record_count": pa.array([], pa.int64()),
                             "file_count": pa.array([], pa.int64()), "total_size": pa.array([], pa.int64())})
        if kind == "manifests" and table.current_snapshot() is None:
            return pa.table({"path": pa.array([], pa.string()), "length": pa.array([], pa.int64())})
        arrow = getattr(inspect, kind)()
        if kind == "partitions" and "total_data_file_size_in_bytes" in arrow.column_names:
            # Trino calls it total_size; keep pyiceberg's name too
            arrow = arrow.append_column("total_size", arrow.column("total_data_file_size_in_bytes"))
        return arrow

    def _information_schema_arrow(self, kind: str, tables: dict[tuple[str, str], "Table"]) -> pa.Table:
        """Trino's information_schema.{schemata,tables,columns} for the lake's tables, from pyiceberg.

        ``columns`` carries each field's doc as an extra ``comment`` column (what SHOW COLUMNS shows); the
        information_schema tables themselves are not listed in ``tables``/``columns``."""
        cat = self._db
        if kind == "schemata":
            # Trino lists its own information_schema and the Iceberg connector's system schema too
            names = sorted({".".join(ns) for ns in self._open_catalog().list_namespaces()}
                           | {"information_schema", "system"})
            return pa.table({"catalog_name": [cat] * len(names), "schema_name": names})
        if kind == "tables":
            keys = sorted(tables)
            return pa.table({"table_catalog": [cat] * len(keys), "table_schema": [k[0] for k in keys],
                             "table_name": [k[1] for k in keys], "table_type": ["BASE TABLE"] * len(keys)})
        rows = [{"table_catalog": cat, "table_schema": ns, "table_name": name, "column_name": f.name,
                 "ordinal_position": i, "column_default": None, "is_nullable": "NO" if f.required else "YES",
                 "data_type": trino_type_name(f.field_type), "comment": f.doc}
                for (ns, name), table in sorted(tables.items())
                for i, f in enumerate(table.schema().fields, start=1)]
        schema = pa.schema([("table_catalog", pa.string()), ("table_schema", pa.string()), ("table_name", pa.string()),
                            ("column_name", pa.string()), ("ordinal_position", pa.int64()),
                            ("column_default", pa.string()), ("is_nullable", pa.string()),
                            ("data_type", pa.string()), ("comment", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)

    def _snapshot_for(self, con, table: "Table", ref: TimeTravelRef) -> int:
        try:
            if ref.kind == "version":
                value = con.execute(f"SELECT CAST(({ref.value_sql}) AS BIGINT)").fetchone()[0]
                snap = table.snapshot_by_id(int(value))
                what = f"snapshot {value}"
            else:
                value = con.execute(f"SELECT epoch_ms(CAST(({ref.value_sql}) AS TIMESTAMPTZ))").fetchone()[0]
                snap = table.snapshot_as_of_timestamp(int(value), inclusive=True)
                what = f"a snapshot at or before {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(value / 1000))}"
        except SqlError:
            raise
        except Exception as exc:  # a non-literal or badly typed AS OF value
            raise SqlError(f"FOR {ref.kind.upper()} AS OF {ref.value_sql}: {str(exc).splitlines()[0]}") from None
        if snap is None:
            raise SqlError(
                f"{ref.namespace}.{ref.table} has no {what}; "
                f'list them with SELECT * FROM {ref.namespace}."{ref.table}$snapshots"'
            )
        return snap.snapshot_id

    # -- query -------------------------------------------------------------------------------------------
    def execute(self, sql: str) -> QueryResult:
        start = time.perf_counter()
        with self._lock:
            con = self._connect()
            tables = self._load_tables()
            tr = translate(sql, catalog=self._db, schema=self._schema(tables), known_functions=self._functions)
            for ref in tr.tables:  # a missing table is named as written, before DuckDB sees it
                self._table(tables, ref.namespace, ref.name)
            self._refresh_views(con, tables)
            temp_views: list[str] = []
            registered: list[str] = []
            try:
                for i, meta in enumerate(tr.metadata):
                    arrow = self._metadata_arrow(self._table(tables, meta.namespace, meta.table), meta.kind)
                    reg = f"__ridecast_meta_{i}"
                    con.register(reg, arrow)
                    registered.append(reg)
                    temp_views.append(self._create_view(con, meta, f"SELECT * FROM {reg}"))
                for kind in tr.information_schema:
                    reg = f"__ridecast_info_{kind}"
                    con.register(reg, self._information_schema_arrow(kind, tables))
                    registered.append(reg)
                    full = f"{_q(self._db)}.{_q(INFORMATION_SCHEMA_VIEWS)}.{_q(kind)}"
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self._db)}.{_q(INFORMATION_SCHEMA_VIEWS)}")
                    con.execute(f"CREATE OR REPLACE VIEW {full} AS SELECT * FROM {reg}")
                    temp_views.append(full)
                for ref in tr.time_travel:
                    table = self._table(tables, ref.namespace, ref.table)
                    snap = self._snapshot_for(con, table, ref)
                    body = f"SELECT * FROM iceberg_scan({_lit(table.metadata_location)}, snapshot_from_id={snap})"
                    temp_views.append(self._create_view(con, ref, body))
                result = _hugeint_to_bigint(con.execute(tr.sql).to_arrow_table())
                if tr.columns is not None:
                    result = result.rename_columns(list(tr.columns))
            except SqlError:
                raise
            except Exception as exc:
                raise self._explain(exc, tables) from None
            finally:
                for view in temp_views:
                    con.execute(f"DROP VIEW IF EXISTS {view}")
                for reg in registered:
                    con.unregister(reg)
        return QueryResult(result, self.name, time.perf_counter() - start, tr.sql)

    def _create_view(self, con, ref: MetadataRef | TimeTravelRef, body: str) -> str:
        full = f"{_q(self._db)}.{_q(ref.namespace)}.{_q(ref.view)}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self._db)}.{_q(ref.namespace)}")
        con.execute(f"CREATE OR REPLACE VIEW {full} AS {body}")
        return full

    def _explain(self, exc: Exception, tables: dict[tuple[str, str], "Table"]) -> SqlError:
        """Turn a DuckDB error into one line in the user's (Trino's) terms."""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if m := _MISSING_FN.search(first):
            return UnsupportedSqlError(f"function {m.group(1)}()", suggestion_for(m.group(1)))
        if m := _MISSING_TABLE.search(first):
            known = ", ".join(sorted(f"{n}.{t}" for n, t in tables)) or "none"
            return SqlError(f"table {m.group(1)} not found (qualify it as namespace.table); known tables: {known}")
        kind = type(exc).__name__.removesuffix("Exception").removesuffix("Error")
        return SqlError(f"embedded engine ({kind}): {first.split(': ', 1)[-1]}")
