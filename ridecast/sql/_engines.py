"""Engines registered in one typed table; settings (or an explicit name) pick one.

``auto`` means Trino when ``sql.trino_url`` is set (production) and the embedded DuckDB engine otherwise
(one machine), so the same command and the same SQL run in both places.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ridecast.sql._errors import SqlError
from ridecast.sql._result import QueryResult

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["ENGINES", "Engine", "EngineName", "EngineSpec", "get_engine", "run_sql"]

EngineName = Literal["auto", "embedded", "trino"]


class Engine(Protocol):
    name: str

    def execute(self, sql: str) -> QueryResult: ...


def _embedded(settings: "Settings") -> Engine:
    from ridecast.sql._embedded import EmbeddedEngine

    return EmbeddedEngine(settings)


def _trino(settings: "Settings") -> Engine:
    from ridecast.sql._trino import TrinoEngine

    return TrinoEngine(settings)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    factory: Callable[["Settings"], Engine]
    configured: Callable[["Settings"], bool]  # does settings point at this engine (for "auto")
    description: str


ENGINES: dict[str, EngineSpec] = {
    "trino": EngineSpec("trino", _trino, lambda s: bool(s.sql.trino_url),
                        "Trino server (sql.trino_url), SQL as written"),
    "embedded": EngineSpec("embedded", _embedded, lambda s: True, "DuckDB in-process, Trino SQL translated"),
}

# Engines are reused across queries (DuckDB extension loading and catalog connections are not free),
# keyed by the settings that shape them; a few at most live in one process.
_CACHE: "OrderedDict[tuple[str, str], Engine]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def _key(name: str, settings: "Settings") -> tuple[str, str]:
    relevant = {"catalog": settings.catalog.model_dump(), "uri": settings.catalog_uri,
                "warehouse": settings.warehouse, "sql": settings.sql.model_dump()}
    return name, repr(sorted(relevant.items()))


def get_engine(settings: "Settings", engine: EngineName | str = "auto") -> Engine:
    if engine == "auto":
        name = next(n for n, spec in ENGINES.items() if spec.configured(settings))
    elif engine in ENGINES:
        name = engine
    else:
        raise SqlError(f"unknown engine {engine!r}; choose auto, {', '.join(ENGINES)}")
    key = _key(name, settings)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        eng = ENGINES[name].factory(settings)
        _CACHE[key] = eng
        while len(_CACHE) > _CACHE_SIZE:
            _, old = _CACHE.popitem(last=False)
            if hasattr(old, "close"):
                old.close()
        return eng


def run_sql(sql: str, settings: "Settings | None" = None, *, engine: EngineName | str = "auto") -> QueryResult:
    """Run one Trino-dialect query on the engine settings select (or ``engine``)."""
    from ridecast.config import get_settings

    return get_engine(settings or get_settings(), engine).execute(sql)
