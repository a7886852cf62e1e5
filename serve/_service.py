"""The forecasting service a replica hosts: features from the online store, models from MLflow, one answer type.

This is the interface the HTTP layer (:mod:`serve._api`), the Ray Serve deployment and the plain uvicorn app of
the benchmark share; it knows nothing of HTTP or Ray. ``forecast_many`` is the batched body that
``@serve.batch`` calls: requests are merged per horizon, so a batch costs one store read and one
``inplace_predict`` per horizon, however many requests it holds.

**Fallback.** A forecast comes from the horizon's champion unless (a) the features are older than
``serving.max_feature_age_s`` or (b) there is no champion loaded; then it is the seasonal-naive value (requests in
the same interval one week earlier, ``FeatureLookup.seasonal_naive``) and says so in ``source`` and
``fallback_reason``. A NaN seasonal-naive (history shorter than a week) falls back to 0 with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Sequence

import pandas as pd

if TYPE_CHECKING:
    from ridecast.config import Settings
    from serve._history import ZoneHistory
    from serve._models import ModelSet
    from serve._stores import OnlineStore

__all__ = ["Forecast", "ForecastRequest", "ForecastService", "Readiness", "UnknownHorizonError"]

Source = Literal["model", "seasonal_naive"]


class UnknownHorizonError(ValueError):
    """A horizon that no model is trained for (``training.horizons``): a 422, naming the valid ones."""


@dataclass(frozen=True)
class ForecastRequest:
    zones: tuple[str, ...] | None  # None: every zone the store knows
    horizons: tuple[int, ...]


@dataclass(frozen=True)
class Forecast:
    zone: str
    horizon_min: int
    predicted_requests: float  # >= 0
    target_start: pd.Timestamp  # = feature_time: the forecast covers [feature_time, feature_time + horizon)
    target_end: pd.Timestamp
    feature_time: pd.Timestamp  # newest closed window the features read
    feature_age_s: float  # now - feature_time
    stale: bool
    source: Source
    model_name: str | None  # the registered model (None when no champion is loaded)
    model_version: int | None
    fallback_reason: str | None = None  # why source is seasonal_naive


@dataclass(frozen=True)
class Readiness:
    ready: bool  # a model for every horizon and features in the store
    models: dict[int, int | None]  # horizon -> loaded champion version
    feature_time: pd.Timestamp | None
    reasons: list[str] = field(default_factory=list)  # what is missing, in the user's terms


class ForecastService:
    """One replica's forecaster. ``start()`` fills the store and loads the models; ``close()`` stops threads.

    ``store`` and ``models`` default to ``get_store(settings)`` and ``ModelSet(settings)``; tests pass their own.
    """

    def __init__(
        self, settings: "Settings", store: "OnlineStore | None" = None, models: "ModelSet | None" = None
    ) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Bootstrap the store from the lake (memory backend), start the feed thread (``serving.run_feed``) and the
        model poller (``serving.model_poll_s``); the first model refresh is synchronous."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def forecast(self, zones: Sequence[str] | None, horizons: Sequence[int], now=None) -> list[Forecast]:
        """Zones x horizons, zone-major. Raises UnknownZoneError, UnknownHorizonError, NoFeaturesError."""
        return self.forecast_many([ForecastRequest(None if zones is None else tuple(zones), tuple(horizons))], now)[0]

    def forecast_many(self, requests: Sequence[ForecastRequest], now=None) -> list[list[Forecast]]:
        """The batched body (``@serve.batch``): one answer list per request. A request that fails (unknown zone)
        must not fail the others: its slot holds the exception instance instead of a list."""
        raise NotImplementedError

    def zones(self) -> list[str]:
        raise NotImplementedError

    def readiness(self) -> Readiness:
        raise NotImplementedError

    def history(self, zone: str, hours: int) -> "ZoneHistory":
        raise NotImplementedError
