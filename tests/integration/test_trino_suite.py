"""The Trino query suite (tests/trino_suite.py) on a real Trino 476 and on the embedded engine, over the same
small lake written by pyiceberg, on each catalog backend: results must agree, or the embedded engine must
refuse the query with an UnsupportedSqlError naming the construct (never a DuckDB error)."""

from __future__ import annotations

import uuid

import pytest

from ridecast.config import CatalogSettings, Settings, SqlSettings
from ridecast.sql import UnsupportedSqlError, run_sql
from tests.trino_suite import SUITE, Lake, build_lake, normalise

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def suite_lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               trino_server: str) -> tuple[Settings, Lake]:
    """The lake, built once per backend, and a Trino catalog over it (same JDBC catalog, same warehouse)."""
    from ridecast.stack.trino import drop_catalog, register_catalog

    home = tmp_path_factory.mktemp(f"suite-{request.param}")
    trino_catalog = f"suite_{request.param}"
    catalog = CatalogSettings(name=f"suite{uuid.uuid4().hex[:8]}")
    if request.param == "postgres":
        catalog = CatalogSettings(name=catalog.name, uri=request.getfixturevalue("postgres_uri"))
    sql = SqlSettings(trino_url=trino_server, trino_catalog=trino_catalog)
    settings = Settings(home=home, catalog=catalog, sql=sql)
    lake = build_lake(settings)
    register_catalog(trino_server, trino_catalog, settings)
    yield settings, lake
    drop_catalog(trino_server, trino_catalog)


@pytest.mark.parametrize("query", SUITE, ids=[q.name for q in SUITE])
def test_trino_and_embedded_agree(suite_lake, query):
    settings, lake = suite_lake
    sql = lake.fill(query.sql)
    trino = run_sql(sql, settings, engine="trino")
    assert trino.engine == "trino"
    if query.embedded_rejects is not None:
        with pytest.raises(UnsupportedSqlError, match=query.embedded_rejects):
            run_sql(sql, settings, engine="embedded")
        return
    embedded = run_sql(sql, settings, engine="embedded")
    assert embedded.engine == "embedded"
    assert embedded.columns == trino.columns
    assert trino.num_rows > 0, "a query that returns nothing compares nothing"
    assert normalise(embedded.table, ordered=query.ordered) == normalise(trino.table, ordered=query.ordered)


def test_suite_is_large_enough_and_names_are_unique():
    assert len(SUITE) >= 40
    assert len({q.name for q in SUITE}) == len(SUITE)
