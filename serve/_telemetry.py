"""Traces (OpenTelemetry) and metrics (prometheus-client) of the serving path.

The service calls the small functions below; they are cheap no-ops until :func:`configure` ran (a replica or the
plain app configures once at start). Spans: ``forecast`` (ingress) > ``feature_lookup`` > ``inference``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["configure", "observe_batch", "observe_feature_age", "set_model_version", "span"]


def configure(settings: "Settings", service_name: str = "ridecast-serve") -> None:
    raise NotImplementedError


@contextmanager
def span(name: str, **attributes) -> Iterator[None]:
    yield


def observe_batch(size: int) -> None:
    pass


def observe_feature_age(horizon: int, seconds: float) -> None:
    pass


def set_model_version(horizon: int, version: int | None) -> None:
    pass
