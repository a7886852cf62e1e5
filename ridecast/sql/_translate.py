"""Trino SQL -> DuckDB SQL, with the lakehouse constructs sqlglot does not know rewritten first.

Why an AST pass and not string edits: Iceberg metadata tables (``"t$snapshots"``), time travel
(``FOR VERSION AS OF``) and unqualified ``ns.table`` names are all properties of ``Table`` nodes, and
sqlglot parses them faithfully from Trino even though it cannot generate them for DuckDB. So we parse
once with ``read="trino"``, rewrite those nodes to names the embedded engine will create as views, type
the division operators (Trino's ``5/2`` is ``2``, DuckDB's is ``2.5``), and only then generate DuckDB SQL.

This module is pure (no DuckDB, no catalog): the engine passes in the schema and function list it knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from ridecast.sql._errors import ReadOnlySqlError, SqlError, UnsupportedSqlError

__all__ = [
    "METADATA_TABLES",
    "MetadataRef",
    "TableRef",
    "TimeTravelRef",
    "Translation",
    "suggestion_for",
    "translate",
]

# Trino's Iceberg metadata tables we serve (from pyiceberg's table.inspect).
METADATA_TABLES = ("snapshots", "files", "history", "partitions", "manifests", "refs", "properties")

# Trino functions DuckDB lacks, with what to write instead (in Trino SQL that runs on both engines).
_SUGGESTIONS: dict[str, str] = {
    "format_datetime": "use date_format(ts, '%Y-%m-%d %H:%i') (MySQL-style pattern), which runs on both engines",
    "at_timezone": "use `ts AT TIME ZONE 'Asia/Singapore'`",
    "to_iso8601": "use CAST(ts AS varchar) or date_format(ts, '%Y-%m-%dT%H:%i:%s')",
    "map_agg": "aggregate with GROUP BY (one row per key) instead of building a map",
    "parse_datetime": "use date_parse(s, '%Y-%m-%d %H:%i:%s') (MySQL-style pattern)",
    "with_timezone": "use `ts AT TIME ZONE 'zone'`",
    "approx_set": "use approx_distinct(x)",
    "from_unixtime_nanos": "use from_unixtime(n / 1e9)",
}

_READ_ONLY_KINDS: tuple[type[exp.Expression], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
)

_ANON_COL = re.compile(r"^_col_(\d+)$")


@dataclass(frozen=True)
class TableRef:
    namespace: str
    name: str

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class MetadataRef:
    """``ns."table$kind"``: the engine creates a view of that exact name from pyiceberg's inspect output."""

    namespace: str
    table: str
    kind: str

    @property
    def view(self) -> str:
        return f"{self.table}${self.kind}"


@dataclass(frozen=True)
class TimeTravelRef:
    """``ns.table FOR VERSION|TIMESTAMP AS OF x``, rewritten to a view named ``view`` in the same schema."""

    namespace: str
    table: str
    kind: str  # "version" | "timestamp"
    value_sql: str  # the AS OF expression, in DuckDB SQL (a literal id, or a timestamp expression)
    view: str


@dataclass(frozen=True)
class Translation:
    sql: str
    tables: tuple[TableRef, ...]
    metadata: tuple[MetadataRef, ...]
    time_travel: tuple[TimeTravelRef, ...]


def suggestion_for(function: str) -> str | None:
    return _SUGGESTIONS.get(function.lower())


def _statement_name(stmt: exp.Expression) -> str:
    if isinstance(stmt, exp.Command):
        return str(stmt.this).upper()
    return stmt.key.upper().replace("TRUNCATETABLE", "TRUNCATE")


def parse_one_query(sql: str) -> exp.Query:
    """Parse Trino SQL; exactly one read-only query is accepted."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="trino", error_level=ErrorLevel.RAISE) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise SqlError(f"syntax error{where}: {first.get('description', str(exc).splitlines()[0])}") from None
    if not statements:
        raise SqlError("empty query")
    if len(statements) > 1:
        raise SqlError(f"one statement per query, got {len(statements)}")
    stmt = statements[0]
    if isinstance(stmt, _READ_ONLY_KINDS):
        raise ReadOnlySqlError(_statement_name(stmt))
    if not isinstance(stmt, exp.Query):
        name = _statement_name(stmt)
        hint = "use `ridecast tables`, or query information_schema.tables / information_schema.columns"
        raise UnsupportedSqlError(f"{name} statement", hint if name in {"SHOW", "DESCRIBE", "DESC"} else None)
    return stmt


def _cte_names(stmt: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in stmt.find_all(exp.CTE)}


def _rewrite_tables(
    stmt: exp.Query, catalog: str
) -> tuple[list[TableRef], list[MetadataRef], list[TimeTravelRef]]:
    ctes = _cte_names(stmt)
    tables: list[TableRef] = []
    metas: list[MetadataRef] = []
    travels: list[TimeTravelRef] = []
    for node in list(stmt.find_all(exp.Table)):
        name = node.name
        if not name or not isinstance(node.this, exp.Identifier):
            continue  # table functions, UNNEST, ...
        if not node.args.get("db"):
            if name.lower() not in ctes and node.args.get("version") is not None:
                raise SqlError(f"time travel needs a qualified table name (namespace.table), got {name!r}")
            continue  # a CTE or an unqualified name: left for the engine to resolve
        if not node.args.get("catalog"):
            node.set("catalog", exp.to_identifier(catalog))
        ns = node.args["db"].name
        version = node.args.get("version")
        if "$" in name:
            table, _, kind = name.partition("$")
            if kind.lower() not in METADATA_TABLES:
                raise UnsupportedSqlError(
                    f'metadata table "{name}"', f"supported: {', '.join('$' + k for k in METADATA_TABLES)}"
                )
            if version is not None:
                raise UnsupportedSqlError("time travel on a metadata table")
            ref = MetadataRef(ns, table, kind.lower())
            node.set("this", exp.to_identifier(ref.view, quoted=True))
            metas.append(ref)
            continue
        tables.append(TableRef(ns, name))
        if version is not None:
            kind = str(version.this).lower()
            if kind not in {"version", "timestamp"} or str(version.args.get("kind", "")).upper() != "AS OF":
                raise UnsupportedSqlError(f"FOR {version.this} {version.args.get('kind')}",
                                          "use FOR VERSION AS OF <id>")
            view = f"{name}$tt{len(travels)}"
            value_sql = version.expression.sql(dialect="duckdb")
            travels.append(TimeTravelRef(ns, name, kind, value_sql, view))
            node.set("version", None)
            node.set("this", exp.to_identifier(view, quoted=True))
            if not node.alias:  # keep `zone_features.col` references working
                node.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
    return tables, metas, travels


def _check_functions(stmt: exp.Expression, known_functions: Iterable[str] | None) -> None:
    if known_functions is None:
        return
    known = {f.lower() for f in known_functions}
    for fn in stmt.find_all(exp.Anonymous):
        name = str(fn.this)
        if name.lower() not in known:
            raise UnsupportedSqlError(f"function {name}()", suggestion_for(name))


def _type_divisions(stmt: exp.Query, schema: Mapping | None) -> exp.Query:
    """Type the tree so Trino's integer division survives (DuckDB's ``/`` is always fractional).

    Qualifying also names unnamed output columns; we rename them to Trino's ``_colN`` so both engines
    return the same column names. If qualification fails (e.g. a column sqlglot cannot resolve), fall
    back to annotating without it: literals and qualified columns are still typed.
    """
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    try:
        q = qualify(
            stmt.copy(),
            schema=schema or None,
            dialect="trino",
            quote_identifiers=False,
            expand_stars=False,
            validate_qualify_columns=False,
            identify=False,
        )
        q = annotate_types(q, schema=schema or None, dialect="trino")
        select = q if isinstance(q, exp.Select) else None
        if select is not None:
            for alias in select.expressions:
                if isinstance(alias, exp.Alias) and (m := _ANON_COL.match(alias.alias)):
                    alias.set("alias", exp.to_identifier(f"_col{m.group(1)}"))
        return q
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return annotate_types(stmt, schema=schema or None, dialect="trino")


def translate(
    sql: str,
    *,
    catalog: str = "iceberg",
    schema: Mapping | None = None,
    known_functions: Iterable[str] | None = None,
) -> Translation:
    """Translate one Trino query for the embedded engine.

    ``schema`` ({catalog: {ns: {table: {column: type}}}}) lets integer division keep Trino's meaning;
    ``known_functions`` (DuckDB's function names) turns unknown functions into :class:`UnsupportedSqlError`.
    """
    stmt = parse_one_query(sql)
    tables, metas, travels = _rewrite_tables(stmt, catalog)
    _check_functions(stmt, known_functions)
    typed = _type_divisions(stmt, schema)
    try:
        out = typed.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise UnsupportedSqlError(str(exc).splitlines()[0]) from None
    return Translation(out, tuple(dict.fromkeys(tables)), tuple(dict.fromkeys(metas)), tuple(travels))
