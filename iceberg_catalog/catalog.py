"""Opening the Iceberg catalog that settings name, and creating ridecast's tables in it.

Backends are registered in one table, keyed by URI scheme, and imported only when used, so a missing driver
fails with the extra to install rather than an ImportError deep inside SQLAlchemy. The SQL catalog keeps the
same tables as Iceberg-Java's JdbcCatalog, which is what Trino's ``iceberg.catalog.type=jdbc`` reads: the
embedded SQLite catalog and a production PostgreSQL catalog differ only in the URI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

from iceberg_catalog.tables import _COMMON_PROPS, NAMESPACES, TABLES, TableDef

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from ridecast.config import Settings

__all__ = ["BACKENDS", "CatalogBackend", "UnsupportedCatalogError", "ensure_tables", "flink_catalog_options",
           "load_table", "open_catalog"]


class UnsupportedCatalogError(ValueError):
    """The catalog URI names a backend this code (or the Flink side of it) cannot open."""


@dataclass(frozen=True)
class CatalogBackend:
    module: str  # imported lazily
    cls: str
    driver: str | None  # the DB-API module the backend needs
    extra: str  # what to install when the driver is missing


BACKENDS: dict[str, CatalogBackend] = {
    "sqlite": CatalogBackend("pyiceberg.catalog.sql", "SqlCatalog", "sqlite3", "pyiceberg[sql-sqlite]"),
    "postgresql": CatalogBackend("pyiceberg.catalog.sql", "SqlCatalog", "psycopg2", "pyiceberg[sql-postgres]"),
    "http": CatalogBackend("pyiceberg.catalog.rest", "RestCatalog", None, "pyiceberg"),
    "https": CatalogBackend("pyiceberg.catalog.rest", "RestCatalog", None, "pyiceberg"),
}


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def open_catalog(settings: "Settings | None" = None) -> "Catalog":
    from ridecast.config import get_settings

    s = settings or get_settings()
    uri = s.catalog_uri
    backend = BACKENDS.get(_scheme(uri))
    if backend is None:
        raise UnsupportedCatalogError(f"catalog URI {uri!r}: unsupported scheme; supported: "
                                      f"{', '.join(sorted(BACKENDS))}")
    if backend.driver:
        try:
            importlib.import_module(backend.driver)
        except ImportError as exc:
            raise RuntimeError(f"catalog {uri!r} needs {backend.driver}: pip install '{backend.extra}'") from exc
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    warehouse = s.warehouse
    if warehouse.startswith("file://"):
        Path(warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    cls = getattr(importlib.import_module(backend.module), backend.cls)
    props = {"uri": uri, "warehouse": warehouse, **s.catalog.properties}
    if backend.cls == "SqlCatalog":
        props.setdefault("init_catalog_tables", "true")
    return cls(s.catalog.name, **props)


# Iceberg-Java's JdbcCatalog as Flink's Iceberg catalog factory takes it: ``catalog-type=jdbc`` is not one of the
# factory's types, so the implementation class is named. ``jdbc.*`` properties go to the JDBC driver, except
# ``jdbc.schema-version``: V1 is the layout pyiceberg's SqlCatalog reads and writes.
_JDBC_CATALOG = {"catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog", "jdbc.schema-version": "V1"}
# sqlite-jdbc's connection pragma: the job's four table committers (and pyiceberg beside them) share one catalog
# file; a writer that finds it locked waits this long for the lock instead of failing the commit at once.
SQLITE_BUSY_TIMEOUT_MS = 60_000


def flink_catalog_options(settings: "Settings") -> dict[str, str]:
    """The Flink SQL options (``CREATE CATALOG ... WITH``) of the catalog :func:`open_catalog` opens.

    settings.catalog.uri is a SQLAlchemy URI; the Flink side speaks JDBC: ``sqlite:///p`` becomes
    ``jdbc:sqlite:/p``, ``postgresql+psycopg2://user:pw@host:port/db?k=v`` becomes
    ``jdbc:postgresql://host:port/db?k=v`` with ``jdbc.user`` / ``jdbc.password``. REST catalogs pass through.
    """
    from sqlalchemy.engine import make_url

    uri = settings.catalog_uri
    scheme = _scheme(uri)
    extra = dict(settings.catalog.properties)  # FileIO settings (s3.*): Iceberg-Java reads the same keys
    if scheme in ("http", "https"):
        return {"catalog-type": "rest", "uri": uri, "warehouse": settings.warehouse, **extra}
    if scheme not in ("sqlite", "postgresql"):
        raise UnsupportedCatalogError(f"catalog URI {uri!r}: the Flink job cannot open it; supported: "
                                      "sqlite, postgresql, http(s)")
    url = make_url(uri)
    opts = {**_JDBC_CATALOG, "warehouse": settings.warehouse}
    if scheme == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UnsupportedCatalogError(f"catalog URI {uri!r}: the Flink job and pyiceberg must share a file")
        opts["uri"] = f"jdbc:sqlite:{Path(url.database).resolve()}"
        opts["jdbc.busy_timeout"] = str(SQLITE_BUSY_TIMEOUT_MS)
    else:
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        query = "&".join(f"{k}={v}" for k, vals in url.query.items()
                         for v in ((vals,) if isinstance(vals, str) else vals))
        opts["uri"] = f"jdbc:postgresql://{host}{port}/{url.database or ''}" + (f"?{query}" if query else "")
        if url.username:
            opts["jdbc.user"] = url.username
        if url.password is not None:
            opts["jdbc.password"] = url.password
    return {**opts, **extra}


def _create(catalog: "Catalog", t: TableDef) -> "Table":
    try:
        return catalog.create_table(
            t.identifier,
            schema=t.schema,
            partition_spec=t.partition_spec,
            sort_order=t.sort_order,
            properties={"comment": t.description, **_COMMON_PROPS, **t.properties},
        )
    except TableAlreadyExistsError:
        return catalog.load_table(t.identifier)


def ensure_tables(catalog: "Catalog", only: list[str] | None = None) -> dict[str, "Table"]:
    """Create missing namespaces and tables (idempotent); returns them by identifier."""
    for ns in NAMESPACES:
        try:
            catalog.create_namespace(ns)
        except NamespaceAlreadyExistsError:
            pass
    wanted = [TABLES[i] for i in only] if only else list(TABLES.values())
    return {t.identifier: _create(catalog, t) for t in wanted}


def load_table(catalog: "Catalog", identifier: str) -> "Table":
    """Load a ridecast table, creating it (and its namespace) on first use."""
    if identifier in TABLES:
        return ensure_tables(catalog, [identifier])[identifier]
    return catalog.load_table(identifier)
