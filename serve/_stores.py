"""Online stores registered in one typed table; ``serving.backend`` (or an explicit name) picks one.

``memory`` keeps the windows inside the serving process (one machine, one replica, or a replica that bootstraps
its own copy); ``redis`` keeps them in one Redis that a single feed writes and every replica reads (Kubernetes).
Both answer the same :class:`OnlineStore` protocol and one test suite runs against both.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping, Protocol, Sequence

import numpy as np

from serve._errors import StoreConfigError, StoreNotInstalledError
from serve._rows import WindowRow

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["STORES", "OnlineStore", "StoreName", "StoreSpec", "get_store"]

StoreName = Literal["memory", "redis"]


class OnlineStore(Protocol):
    """Windows by ``(zone, window_minutes, window_end)``; times are epoch milliseconds (UTC).

    Safe to share between threads (a feed thread writes while request threads read).
    """

    name: str

    def upsert(self, rows: Sequence[WindowRow]) -> int:
        """Store the rows; a key already held is the same window again and is stored once. Returns the new keys."""
        ...

    def bounds(self) -> tuple[int | None, int | None]:
        """``(since, watermark)``: the earliest window start and the newest window end ever stored."""
        ...

    def revision(self) -> int:
        """A number that changes whenever an upsert stored rows (new or repeated): what a reader caches against."""
        ...

    def zones(self) -> list[str]: ...

    def read(self, zones: Sequence[str], wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """For each window size, the windows ending at ``wanted[w]`` (ms): ``[zones, ends, COLUMNS]``, NaN = none."""
        ...

    def latest(self, zone: str) -> dict[int, WindowRow]:
        """The newest window of each size the zone has."""
        ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def _memory(settings: "Settings") -> OnlineStore:
    from serve._memory import MemoryStore

    return MemoryStore(settings)


def _redis(settings: "Settings") -> OnlineStore:
    from serve._redis import RedisStore

    return RedisStore(settings)


@dataclass(frozen=True)
class StoreSpec:
    name: str
    factory: Callable[["Settings"], OnlineStore]
    requires: str | None  # importable module the backend needs (None: nothing beyond numpy)
    package: str | None  # its distribution, for the install hint
    extra: str | None  # the pyproject extra that brings it
    description: str


STORES: dict[str, StoreSpec] = {
    "memory": StoreSpec("memory", _memory, None, None, None, "in the serving process, numpy rings (one machine)"),
    "redis": StoreSpec("redis", _redis, "redis", "redis", "serve", "one Redis shared by every replica (Kubernetes)"),
}


def get_store(settings: "Settings", backend: StoreName | str | None = None) -> OnlineStore:
    """A new store of ``backend`` (default ``serving.backend``); the caller closes it."""
    name = backend or settings.serving.backend
    spec = STORES.get(name)
    if spec is None:
        raise StoreConfigError(f"unknown online store {name!r}; choose {', '.join(STORES)}")
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise StoreNotInstalledError(spec.name, spec.package or spec.requires, spec.extra or "")
    return spec.factory(settings)
