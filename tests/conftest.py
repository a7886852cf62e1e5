"""Shared fixtures: one real broker, PostgreSQL and Redis server per session, a fresh state dir per test.

Catalog-dependent tests take the ``catalog_settings`` fixture, which is parametrised over every catalog
backend (embedded SQLite and production PostgreSQL), Feast-style, so both stay honest.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ridecast.config import Settings, get_settings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Apache Kafka broker (KRaft, one node) on 127.0.0.1 for the whole session; returns its address."""
    from ridecast.stack.broker import start_broker, stop_broker

    s = Settings(home=tmp_path_factory.mktemp("broker-home"))
    servers = start_broker(s)
    yield servers
    stop_broker(s)


@pytest.fixture(scope="session")
def postgres_uri() -> str:
    from tests.pg import PostgresServer, pg_bindir

    if pg_bindir() is None:
        pytest.fail("PostgreSQL is required for the production-catalog tests: apt-get install -y postgresql")
    server = PostgresServer()
    server.start()
    yield server.uri
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real redis-server on 127.0.0.1 for the session (the Kubernetes online-store backend)."""
    from tests.redis_server import RedisServer, redis_server_bin

    if redis_server_bin() is None:
        pytest.fail("redis-server is required for the online-store tests: apt-get install -y redis-server")
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    """The operators' CRD files (``Settings.crd_dir``: the setting, else ``shared/crds`` beside the checkout) for
    every check of a custom resource. Skipped on a checkout with neither (CI fetches them and sets the variable);
    a setting that names a missing directory fails."""
    d = Settings().crd_dir
    if d is None:
        pytest.skip("no CRD directory: set RIDECAST_VALIDATION__CRD_DIR to the operators' CRD files")
    assert d.is_dir(), f"validation.crd_dir {d} does not exist"
    return d


def _env_for(home: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.setenv("RIDECAST_HOME", str(home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with a fresh state dir and the embedded SQLite catalog; no broker."""
    s = _env_for(tmp_path / "home", monkeypatch)
    yield s
    get_settings.cache_clear()


@pytest.fixture
def kafka_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str) -> Settings:
    """Settings pointing at the session broker, with topic names unique to this test."""
    suffix = uuid.uuid4().hex[:8]
    s = _env_for(
        tmp_path / "home",
        monkeypatch,
        RIDECAST_KAFKA__BOOTSTRAP_SERVERS=broker,
        RIDECAST_KAFKA__EVENTS_TOPIC=f"trip-events-{suffix}",
        RIDECAST_KAFKA__FEATURES_TOPIC=f"zone-features-{suffix}",
        RIDECAST_KAFKA__DEAD_LETTER_TOPIC=f"trip-events-dlq-{suffix}",
        RIDECAST_FLINK__CONSUMER_GROUP=f"ridecast-{suffix}",
    )
    yield s
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose Iceberg catalog is each backend in turn (same warehouse layout)."""
    env = {}
    if request.param == "postgres":
        uri = request.getfixturevalue("postgres_uri")
        # one database, isolated per test by the JDBC catalog name
        env["RIDECAST_CATALOG__URI"] = uri
        env["RIDECAST_CATALOG__NAME"] = f"t{uuid.uuid4().hex[:10]}"
    s = _env_for(tmp_path / "home", monkeypatch, **env)
    yield s
    get_settings.cache_clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the marker: tests/unit are in-process, tests/integration start real engines."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in parts:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def trino_stack(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One real Trino 476 for the whole session, started only when a test asks; catalogs are added per test
    (``trino.dynamic_catalogs``), so one server serves every catalog backend. Returns the server's settings."""
    from ridecast.config import TrinoSettings
    from ridecast.stack.trino import start_trino, stop_trino

    s = Settings(home=tmp_path_factory.mktemp("trino-home"), trino=TrinoSettings(heap="2G", dynamic_catalogs=True))
    start_trino(s)
    yield s
    assert stop_trino(s), "the session's Trino was not running at the end"


@pytest.fixture(scope="session")
def trino_server(trino_stack: Settings) -> str:
    """The session Trino's URL."""
    from ridecast.stack.trino import trino_url

    return trino_url(trino_stack)


@pytest.fixture
def trino_settings(catalog_settings: Settings, trino_server: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``catalog_settings`` plus a Trino catalog over the same Iceberg catalog (SQLite or PostgreSQL)."""
    from ridecast.stack.trino import drop_catalog, register_catalog

    name = f"lake_{uuid.uuid4().hex[:8]}"
    register_catalog(trino_server, name, catalog_settings)
    s = _env_for(catalog_settings.home, monkeypatch, RIDECAST_SQL__TRINO_URL=trino_server,
                 RIDECAST_SQL__TRINO_CATALOG=name)
    yield s
    drop_catalog(trino_server, name)
    get_settings.cache_clear()
