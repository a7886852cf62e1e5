"""Errors of the online feature store and the service's set-up: each names the cause and the fix in the user's terms."""

from __future__ import annotations

__all__ = [
    "IngressNetworkError",
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


class IngressNetworkError(Exception):
    """Settings that would make the service listen beyond 127.0.0.1 on this network (``serving.ingress``)."""
