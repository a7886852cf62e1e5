"""Online forecasting (issue #9): the online feature store that a serving replica reads.

>>> from serve import OnlineFeatures, get_store
>>> store = get_store(settings)                      # serving.backend: memory | redis  # doctest: +SKIP
>>> OnlineFeatures(store, settings).lookup(60, ["TAMPINES"]).frame  # doctest: +SKIP

The feature vector is computed by ``training.features``, the definition the models were trained on, over the
windows the store holds (bootstrapped from ``gold.zone_features``, kept fresh from the feature job's online
topic). Every lookup carries its feature time, so a response can say how old it is and whether it is stale.
"""

from serve._errors import (
    MalformedWindowError,
    NoFeaturesError,
    OnlineStoreError,
    StoreConfigError,
    StoreNotInstalledError,
    StoreUnavailableError,
    UnknownZoneError,
)
from serve._feed import FeatureFeed, FeedStats, bootstrap_from_lake
from serve._lookup import FeatureLookup, FetchedWindows, OnlineFeatures, is_stale
from serve._rows import COLUMNS, WindowRow, history_span_ms, parse_message, rows_from_frame
from serve._stores import STORES, OnlineStore, StoreName, StoreSpec, get_store

__all__ = [
    "COLUMNS",
    "STORES",
    "FeatureFeed",
    "FeatureLookup",
    "FeedStats",
    "FetchedWindows",
    "MalformedWindowError",
    "NoFeaturesError",
    "OnlineFeatures",
    "OnlineStore",
    "OnlineStoreError",
    "StoreConfigError",
    "StoreName",
    "StoreNotInstalledError",
    "StoreSpec",
    "StoreUnavailableError",
    "UnknownZoneError",
    "WindowRow",
    "bootstrap_from_lake",
    "get_store",
    "history_span_ms",
    "is_stale",
    "parse_message",
    "rows_from_frame",
]
