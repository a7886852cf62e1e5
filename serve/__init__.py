"""Online forecasting (issue #9): the online feature store, the champions and the forecasting service a replica hosts.

>>> from serve import OnlineFeatures, get_store
>>> store = get_store(settings)                      # serving.backend: memory | redis  # doctest: +SKIP
>>> OnlineFeatures(store, settings).lookup(60, ["TAMPINES"]).frame  # doctest: +SKIP

The feature vector is computed by ``training.features``, the definition the models were trained on, over the
windows the store holds (bootstrapped from ``gold.zone_features``, kept fresh from the feature job's online
topic). Every lookup carries its feature time, so a response can say how old it is and whether it is stale.

>>> service = ForecastService(settings); service.start()       # store filled, champions loaded  # doctest: +SKIP
>>> service.forecast(["TAMPINES"], [60])[0].predicted_requests  # doctest: +SKIP
"""

from serve._errors import (
    HAProxyNotInstalledError,
    MalformedWindowError,
    NoFeaturesError,
    OnlineStoreError,
    StoreConfigError,
    StoreNotInstalledError,
    StoreUnavailableError,
    UnknownZoneError,
)
from serve._feed import FeatureFeed, FeedStats, bootstrap_from_lake, feed_until, run_feed, try_bootstrap
from serve._haproxy import HAProxyBindError
from serve._history import ZoneHistory, zone_history
from serve._lookup import FeatureLookup, FetchedWindows, OnlineFeatures, is_stale
from serve._models import LoadedModel, ModelSet, RefreshResult
from serve._rows import COLUMNS, WindowRow, history_span_ms, parse_message, rows_from_frame
from serve._service import Forecast, ForecastRequest, ForecastService, Readiness, UnknownHorizonError
from serve._stores import STORES, OnlineStore, StoreName, StoreSpec, get_store

__all__ = [
    "COLUMNS",
    "STORES",
    "FeatureFeed",
    "FeatureLookup",
    "FeedStats",
    "FetchedWindows",
    "Forecast",
    "ForecastRequest",
    "ForecastService",
    "HAProxyBindError",
    "HAProxyNotInstalledError",
    "LoadedModel",
    "MalformedWindowError",
    "ModelSet",
    "NoFeaturesError",
    "OnlineFeatures",
    "OnlineStore",
    "OnlineStoreError",
    "Readiness",
    "RefreshResult",
    "StoreConfigError",
    "StoreName",
    "StoreNotInstalledError",
    "StoreSpec",
    "StoreUnavailableError",
    "UnknownHorizonError",
    "UnknownZoneError",
    "WindowRow",
    "ZoneHistory",
    "bootstrap_from_lake",
    "feed_until",
    "get_store",
    "history_span_ms",
    "is_stale",
    "parse_message",
    "rows_from_frame",
    "run_feed",
    "try_bootstrap",
    "zone_history",
]
