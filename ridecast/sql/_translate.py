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
    "INFORMATION_SCHEMA_TABLES",
    "INFORMATION_SCHEMA_VIEWS",
    "METADATA_TABLES",
    "MetadataRef",
    "TableRef",
    "TimeTravelRef",
    "Translation",
    "rewrite_show",
    "suggestion_for",
    "translate",
]

# Trino's Iceberg metadata tables we serve (from pyiceberg's table.inspect).
METADATA_TABLES = ("snapshots", "files", "history", "partitions", "manifests", "refs", "properties")

# information_schema tables the embedded engine serves from the catalog listing (pyiceberg), in a schema
# of this name (DuckDB reserves "information_schema" in every database).
INFORMATION_SCHEMA_TABLES = ("schemata", "tables", "columns")
INFORMATION_SCHEMA_VIEWS = "$information_schema"

_STRING = r"'(?:[^']|'')*'"
_NAME = r'(?:"(?:[^"]|"")+"|[\w$]+)'
_SHOW_SCHEMAS = re.compile(
    rf"^\s*SHOW\s+SCHEMAS(?:\s+(?:FROM|IN)\s+({_NAME}))?(?:\s+LIKE\s+({_STRING}))?\s*;?\s*$", re.I)
_SHOW_TABLES = re.compile(
    rf"^\s*SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+((?:{_NAME}\.)?{_NAME}))?(?:\s+LIKE\s+({_STRING}))?\s*;?\s*$", re.I)
_SHOW_COLUMNS = re.compile(
    rf"^\s*(?:SHOW\s+COLUMNS\s+(?:FROM|IN)|DESCRIBE|DESC)\s+((?:{_NAME}\.){{0,2}}{_NAME})\s*;?\s*$", re.I)


# what Trino names SHOW's output columns (sqlglot's qualify would lower-case the aliases)
_SHOW_COLUMNS_OUT = {"Schema": ("Schema",), "Table": ("Table",), "Column": ("Column", "Type", "Extra", "Comment")}


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def rewrite_show(sql: str) -> str | None:
    """SHOW SCHEMAS / SHOW TABLES / SHOW COLUMNS / DESCRIBE as the information_schema query Trino runs for them
    (same column names and order), or None if ``sql`` is none of those."""
    if m := _SHOW_SCHEMAS.match(sql):
        where = f" WHERE schema_name LIKE {m.group(2)}" if m.group(2) else ""
        return f'SELECT schema_name AS "Schema" FROM information_schema.schemata{where} ORDER BY schema_name'
    if m := _SHOW_TABLES.match(sql):
        if not m.group(1):
            raise UnsupportedSqlError("SHOW TABLES without a schema", "write SHOW TABLES FROM <schema>")
        schema = _unquote(m.group(1).split(".")[-1])
        like = f" AND table_name LIKE {m.group(2)}" if m.group(2) else ""
        return (f'SELECT table_name AS "Table" FROM information_schema.tables '
                f"WHERE table_schema = '{schema}'{like} ORDER BY table_name")
    if m := _SHOW_COLUMNS.match(sql):
        parts = [_unquote(p) for p in re.findall(_NAME, m.group(1))]
        if len(parts) < 2:
            raise UnsupportedSqlError("SHOW COLUMNS / DESCRIBE of an unqualified table", "write <schema>.<table>")
        schema, table = parts[-2], parts[-1]
        return ('SELECT column_name AS "Column", data_type AS "Type", \'\' AS "Extra", '
                'coalesce(comment, \'\') AS "Comment" '
                f"FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = '{table}' "
                "ORDER BY ordinal_position")
    return None


# Trino functions DuckDB lacks, with what to write instead (in Trino SQL that runs on both engines).
_SUGGESTIONS: dict[str, str] = {
    "at_timezone": "use `ts AT TIME ZONE 'Asia/Singapore'`",
    "to_iso8601": "use CAST(ts AS varchar) or date_format(ts, '%Y-%m-%dT%H:%i:%s')",
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
    information_schema: tuple[str, ...] = ()  # views of INFORMATION_SCHEMA_TABLES the engine must create
    columns: tuple[str, ...] | None = None  # output names to restore (SHOW's capitalised ones)


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
        hint = ("supported: SHOW SCHEMAS, SHOW TABLES FROM <schema>, SHOW COLUMNS FROM / DESCRIBE <schema>.<table>, "
                "information_schema.schemata / tables / columns")
        raise UnsupportedSqlError(f"{name} statement", hint if name in {"SHOW", "DESCRIBE", "DESC"} else None)
    return stmt


def _cte_names(stmt: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in stmt.find_all(exp.CTE)}


def _rewrite_tables(
    stmt: exp.Query, catalog: str, infos: list[str]
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
        if ns.lower() == "information_schema":
            if name.lower() not in INFORMATION_SCHEMA_TABLES:
                raise UnsupportedSqlError(f"information_schema.{name}",
                                          f"supported: {', '.join(INFORMATION_SCHEMA_TABLES)}")
            node.set("db", exp.to_identifier(INFORMATION_SCHEMA_VIEWS, quoted=True))
            node.set("this", exp.to_identifier(name.lower(), quoted=True))
            node.set("catalog", exp.to_identifier(catalog))
            infos.append(name.lower())
            continue
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
            if kind == "version" and isinstance(version.expression, exp.Literal) and version.expression.is_string:
                what = f"FOR VERSION AS OF {version.expression.sql(dialect='trino')} (a branch or tag)"
                raise UnsupportedSqlError(what, f'use a snapshot id from {ns}."{name}$refs"')
            view = f"{name}$tt{len(travels)}"
            value_sql = version.expression.sql(dialect="duckdb")
            travels.append(TimeTravelRef(ns, name, kind, value_sql, view))
            node.set("version", None)
            node.set("this", exp.to_identifier(view, quoted=True))
            if not node.alias:  # keep `zone_features.col` references working
                node.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
    return tables, metas, travels


# Joda-Time pattern letters (Trino's format_datetime) -> strftime (DuckDB), longest runs first.
_JODA = (("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"),
         ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSSSSS", "%f"), ("SSS", "%g"),
         ("EEEE", "%A"), ("EEE", "%a"), ("a", "%p"))


def joda_to_strftime(pattern: str) -> str:
    """A format_datetime pattern as a strftime one; letters without an exact equivalent are rejected."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":  # quoted literal text; '' is a single quote
            end = pattern.find("'", i + 1)
            if end == -1:
                raise SqlError(f"format_datetime pattern {pattern!r}: unterminated quote")
            out.append(pattern[i + 1:end].replace("%", "%%") if end > i + 1 else "'")
            i = end + 1
        elif ch.isalpha():
            run = len(pattern) - i - len(pattern[i:].lstrip(ch))
            for letters, code in _JODA:
                if letters[0] == ch and len(letters) == run:
                    out.append(code)
                    break
            else:
                raise UnsupportedSqlError(f"format_datetime pattern {pattern[i:i + run]!r}",
                                          "use yyyy MM dd HH hh mm ss SSS EEE a, or date_format()")
            i += run
        else:
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def _rewrite_functions(stmt: exp.Expression) -> None:
    """Trino functions whose DuckDB spelling or meaning differs, rewritten to an exact equivalent.

    ``date_diff`` counts whole units in Trino (DuckDB's ``date_diff`` counts boundaries; its ``date_sub``
    counts whole units), ``format_datetime`` takes a Joda pattern, ``map_agg`` is a map of two lists,
    ``format`` is printf-style, ``slice`` takes a length, ``array_distinct`` keeps order, and ``date_trunc``
    of a date stays a date.
    """
    for node in list(stmt.find_all(exp.DateDiff)):
        unit = node.args.get("unit")
        unit_sql = exp.Literal.string(str(unit.name if hasattr(unit, "name") else unit or "day").lower())
        node.replace(exp.Anonymous(this="date_sub", expressions=[unit_sql, node.expression, node.this]))
    for node in list(stmt.find_all(exp.Format)):  # Trino's format() is printf-style, DuckDB's is fmt-style
        node.replace(exp.Anonymous(this="printf", expressions=[node.this, *node.expressions]))
    for node in list(stmt.find_all(exp.ArraySlice)):  # slice(a, start, length); sqlglot keeps length as "end"
        start, length = node.args.get("start"), node.args.get("end")
        if start is None or length is None:
            raise UnsupportedSqlError("slice() without a start and a length")
        if isinstance(start, exp.Neg) or (isinstance(start, exp.Literal) and str(start.this).startswith("-")):
            raise UnsupportedSqlError("slice() with a negative start", "use slice(a, cardinality(a) + 1 - n, n)")
        end = exp.Sub(this=exp.Add(this=start.copy(), expression=length), expression=exp.Literal.number(1))
        node.replace(exp.Anonymous(this="list_slice", expressions=[node.this, start, exp.Paren(this=end)]))
    for node in list(stmt.find_all(exp.ArrayDistinct)):  # Trino keeps first occurrences in order
        arr = node.this
        keep = sqlglot.parse_one("list_filter(__a, (__rc_x, __rc_i) -> list_position(__a, __rc_x) = __rc_i)",
                                 read="duckdb")
        for ph in list(keep.find_all(exp.Column)):
            if ph.name == "__a":
                ph.replace(arr.copy())
        node.replace(keep)
    for node in list(stmt.find_all(exp.DateTrunc)):  # date_trunc of a date is a date in Trino
        arg = node.this
        is_date = isinstance(arg, exp.Cast) and arg.to.this == exp.DataType.Type.DATE
        if is_date and not isinstance(node.parent, exp.Cast):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DATE")))
    for fn in list(stmt.find_all(exp.Anonymous)):
        name = str(fn.this).lower()
        args = fn.expressions
        if name == "format_datetime" and len(args) == 2:
            if not isinstance(args[1], exp.Literal) or not args[1].is_string:
                raise UnsupportedSqlError("format_datetime with a non-literal pattern")
            fn.replace(exp.Anonymous(this="strftime",
                                     expressions=[args[0], exp.Literal.string(joda_to_strftime(args[1].this))]))
        elif name == "map_agg" and len(args) == 2:
            fn.replace(exp.Anonymous(this="map", expressions=[exp.Anonymous(this="list", expressions=[args[0]]),
                                                               exp.Anonymous(this="list", expressions=[args[1]])]))


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
    show = rewrite_show(sql)
    stmt = parse_one_query(show or sql)
    if stmt.find(exp.MatchRecognize) is not None:
        raise UnsupportedSqlError("MATCH_RECOGNIZE", "use window functions (lag/lead, row_number)")
    infos: list[str] = []
    tables, metas, travels = _rewrite_tables(stmt, catalog, infos)
    _rewrite_functions(stmt)
    _check_functions(stmt, known_functions)
    typed = _type_divisions(stmt, schema)
    try:
        out = typed.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise UnsupportedSqlError(str(exc).splitlines()[0]) from None
    return Translation(out, tuple(dict.fromkeys(tables)), tuple(dict.fromkeys(metas)), tuple(travels),
                       tuple(dict.fromkeys(infos)), _SHOW_COLUMNS_OUT.get(show.split('"', 2)[1]) if show else None)
