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

import dataclasses
import gc
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
import pandas as pd

from serve import _telemetry
from serve._errors import NoFeaturesError, OnlineStoreError, UnknownZoneError
from serve._history import _utc, zone_history
from serve._lookup import FeatureLookup, OnlineFeatures
from serve._models import LoadedModel, ModelSet
from serve._stores import get_store
from training.registry import model_name

if TYPE_CHECKING:
    from ridecast.config import Settings
    from serve._history import ZoneHistory
    from serve._stores import OnlineStore

__all__ = ["Forecast", "ForecastRequest", "ForecastService", "Readiness", "UnknownHorizonError", "freeze_startup_heap"]

Source = Literal["model", "seasonal_naive"]


log = logging.getLogger(__name__)
_EMPTY = "the online store holds no features yet (is the feature feed running?)"


class UnknownHorizonError(ValueError):
    """A horizon that no model is trained for (``training.horizons``): a 422, naming the valid ones."""

    def __init__(self, horizons: Sequence[int], valid: Sequence[int] = ()) -> None:
        self.horizons, self.valid = list(horizons), list(valid)
        known = f"; models exist for {', '.join(map(str, valid))}" if valid else ""
        super().__init__(f"unknown horizon(s): {', '.join(map(str, horizons))} minutes{known}")


@dataclass(frozen=True)
class ForecastRequest:
    zones: tuple[str, ...] | None  # None: every zone the store knows
    horizons: tuple[int, ...]


@dataclass(frozen=True)
class Forecast:
    zone: str
    horizon_min: int
    predicted_requests: float  # >= 0
    # UTC datetimes, not pd.Timestamp: an all-zones answer serializes hundreds, and pydantic-core writes a plain
    # datetime natively but a subclass through Python
    target_start: datetime  # = feature_time: the forecast covers [feature_time, feature_time + horizon)
    target_end: datetime
    feature_time: datetime  # newest closed window the features read
    feature_age_s: float  # now - feature_time
    stale: bool
    source: Source
    model_name: str | None  # the registered model (None when no champion is loaded)
    model_version: int | None
    fallback_reason: str | None = None  # why source is seasonal_naive


class _NotComputed(Exception):
    """A horizon's lookup and predictions are not computed for the current store revision and model version."""


@dataclass(frozen=True)
class _Computed:
    """One horizon's lookup of every zone and the champion's predictions, valid for ``key``."""

    key: tuple[int, int | None]  # (store revision, model version)
    lookup: FeatureLookup
    pred: np.ndarray | None  # None: no model, or one that needs features the store does not build
    index: dict[str, int]  # zone -> row


@dataclass(frozen=True)
class Readiness:
    ready: bool  # a model for every horizon and features in the store
    models: dict[int, int | None]  # horizon -> loaded champion version
    feature_time: pd.Timestamp | None
    reasons: list[str] = field(default_factory=list)  # what is missing, in the user's terms


def freeze_startup_heap(settings: "Settings") -> int:
    """Move everything a started serving process holds into the collector's permanent generation
    (``gc.freeze``), when ``serving.freeze_heap``; returns how many objects were frozen (0: off).

    Why: by the time the service answers, the process holds the imports of pandas, pyarrow, MLflow, SQLAlchemy and
    XGBoost, the boosters and the bootstrapped store, hundreds of thousands of objects that live as long as it. A
    full collection walks all of them while holding the GIL, and the ordinary garbage of requests triggers one
    every few seconds: a pause for every request in flight, most of the plain app's latency tail
    (serve/README.md, "Latency tail"). Frozen, a full collection walks only what was made since. Call it once, in
    a process that only serves, after the service started: a test process that froze would never free the cycles
    of the tests before it. Ray Serve does the same for its replicas (``RAY_SERVE_FREEZE_GC_ON_STARTUP``, which
    ``serve._deployment.ray_serve_env`` sets from the same setting), so only the plain app calls this."""
    if not settings.serving.freeze_heap:
        return 0
    gc.collect()  # what start-up left as garbage goes now, not into the permanent generation
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("froze %d start-up objects out of the collector's full passes", frozen)
    return frozen


class ForecastService:
    """One replica's forecaster. ``start()`` fills the store and loads the models; ``close()`` stops threads.

    ``store`` and ``models`` default to ``get_store(settings)`` and ``ModelSet(settings)``; tests pass their own.
    ``close()`` closes the store either way (the service is its only user from ``start()`` on).

    Threads: the feed thread writes the store while request threads read it (the stores are thread-safe); the
    model poller swaps ``ModelSet``'s reference, and a request reads one :class:`LoadedModel` per horizon once,
    so it predicts and reports with the same version.
    """

    def __init__(
        self, settings: "Settings", store: "OnlineStore | None" = None, models: "ModelSet | None" = None
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else get_store(settings)
        self.models = models if models is not None else ModelSet(settings)
        self.online = OnlineFeatures(self.store, settings)
        self.horizons = list(settings.training.horizons)
        self._names = {h: model_name(settings, h) for h in self.horizons}
        self._known: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cache: dict[int, _Computed] = {}  # horizon -> every zone's vector and prediction (see _computed)
        self.feed_error: str | None = None
        self.bootstrapped: int | None = None  # windows read from the lake at start (None: no bootstrap)

    # --- lifecycle -----------------------------------------------------------------------------------------

    @property
    def runs_feed(self) -> bool:
        """``serving.run_feed``, defaulting to yes for an in-process store and no for the shared Redis."""
        run = self.settings.serving.run_feed
        return self.store.name == "memory" if run is None else run

    def start(self) -> None:
        """Bootstrap the store from the lake (memory backend), start the feed thread (``serving.run_feed``) and the
        model poller (``serving.model_poll_s``); the first model refresh is synchronous.

        The replica that feeds a shared Redis bootstraps it too (upserts are idempotent). A lake or broker that is
        not there yet does not stop the replica: it starts unready and says why (:meth:`readiness`)."""
        from serve._feed import feed_until, try_bootstrap

        if self.store.name == "memory" or self.runs_feed:
            self.bootstrapped, self.feed_error = try_bootstrap(self.store, self.settings)
        if self.runs_feed:
            # the loop the separate feed process runs too (serve._feed.run_feed): retried, never the end
            start = "rewind" if self.store.name == "memory" else "committed"
            self._spawn("ridecast-feature-feed", feed_until, self._stop, self.store, self.settings, start,
                        self._feed_state)
        self.models.refresh()
        self._spawn("ridecast-model-poller", self.models.run, self._stop)

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _feed_state(self, error: str | None, lag: int | None = None) -> None:
        self.feed_error = error  # readiness says why while the store is empty

    def close(self) -> None:
        self._stop.set()  # the feed thread closes its consumer as it leaves
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        self.store.close()

    # --- forecasts -----------------------------------------------------------------------------------------

    def forecast(self, zones: Sequence[str] | None, horizons: Sequence[int], now=None) -> list[Forecast]:
        """Zones x horizons, zone-major. Raises UnknownZoneError, UnknownHorizonError, NoFeaturesError."""
        out = self.forecast_many([ForecastRequest(None if zones is None else tuple(zones), tuple(horizons))], now)[0]
        if isinstance(out, Exception):
            raise out
        return out

    def _unknown_zones(self, zones: tuple[str, ...]) -> list[str]:
        """Zones the store never saw; the known set is cached and re-read only when a zone is not in it."""
        if not self._known.issuperset(zones):
            self._known = frozenset(self.store.zones())
        return sorted(set(zones) - self._known)

    def forecast_many(self, requests: Sequence[ForecastRequest], now=None) -> list[list[Forecast]]:
        """The batched body (``@serve.batch``): one answer list per request. A request that fails (unknown zone)
        must not fail the others: its slot holds the exception instance instead of a list."""
        _telemetry.observe_batch(len(requests))
        return self._answer(requests, now, compute=True)

    def answer_computed(self, request: ForecastRequest, now=None) -> "list[Forecast] | Exception | None":
        """``request`` answered from the lookups and predictions already computed for the store's revision and the
        loaded champions (:meth:`_computed`), or None when one of its horizons needs a lookup or an inference.

        Why: between two slides every request is a slice of the same computation, so a replica answers it at once
        instead of queueing it for ``@serve.batch``, whose wait (``serving.batch_wait_timeout_s``) a lone request
        would pay in full. Inference still happens only in :meth:`forecast_many` (the batch). Like a slot of it,
        a failed request returns its exception."""
        try:
            (slot,) = self._answer([request], now, compute=False)
        except _NotComputed:
            return None
        return slot

    def _answer(self, requests: Sequence[ForecastRequest], now, *, compute: bool) -> list:
        now = _utc(now) if now is not None else pd.Timestamp(datetime.now(timezone.utc))
        slots: list = [None] * len(requests)
        wanted: dict[int, set[str] | None] = {}  # horizon -> zones (None: all)
        try:
            for i, req in enumerate(requests):
                bad_h = sorted({h for h in req.horizons if h not in self.horizons})
                if bad_h:
                    slots[i] = UnknownHorizonError(bad_h, self.horizons)
                    continue
                if req.zones is not None:
                    unknown = self._unknown_zones(req.zones)
                    if unknown:  # an empty store knows no zone: that is "no features yet", not a bad zone
                        slots[i] = UnknownZoneError(unknown) if self._known else NoFeaturesError(_EMPTY)
                        continue
                for h in req.horizons:
                    if req.zones is None or wanted.get(h, set()) is None:
                        wanted[h] = None
                    else:
                        wanted.setdefault(h, set()).update(req.zones)
        except OnlineStoreError as exc:  # the store cannot list its zones (Redis down)
            return [s if s is not None else exc for s in slots]
        answers: dict[int, dict[str, Forecast] | OnlineStoreError] = {}
        for h, zones in wanted.items():
            if zones is not None and not zones:  # only requests with an empty zone list: nothing to read
                answers[h] = {}
                continue
            try:
                answers[h] = self._forecast_horizon(h, None if zones is None else sorted(zones), now, compute)
            except OnlineStoreError as exc:  # empty store, a zone that vanished, Redis down
                answers[h] = exc
        for i, req in enumerate(requests):
            if slots[i] is not None:
                continue
            zones = req.zones if req.zones is not None else self._all_zones(req.horizons, answers)
            failed = next((answers[h] for h in req.horizons if isinstance(answers[h], Exception)), None)
            slots[i] = failed if failed is not None else [answers[h][z] for z in zones for h in req.horizons]
        return slots

    @staticmethod
    def _all_zones(horizons: Sequence[int], answers: dict) -> list[str]:
        """Every zone of a request without a zone list: those all its horizons' lookups saw (a zone whose first
        window arrived between two lookups of the batch is left to the next request)."""
        seen = [set(answers[h]) for h in horizons if not isinstance(answers[h], Exception)]
        return sorted(set.intersection(*seen)) if seen else []

    def _computed(self, h: int, model: LoadedModel | None, now: pd.Timestamp, compute: bool = True) -> "_Computed":
        """Every zone's vector and the model's predictions at horizon ``h``, computed once per store revision and
        model version: the features change only when the feed stores windows (once per slide) and the
        predictions only then or when the champion moves, so between those a request costs a slice, not a
        lookup and an inference. Age and staleness depend on the clock and are applied per request. Without
        ``compute``, a computation that is not there raises :class:`_NotComputed`."""
        key = (self.store.revision(), None if model is None else model.version)
        hit = self._cache.get(h)
        with _telemetry.span("feature_lookup", horizon=h, cached=hit is not None and hit.key == key):
            if hit is not None and hit.key == key:
                return hit
            if not compute:
                raise _NotComputed(h)
            lk = self.online.lookup(h, None, now=now)
        pred = None
        if model is not None and all(c in lk.matrix.columns for c in model.feature_names):
            with _telemetry.span("inference", horizon=h, rows=len(lk.zones), model_version=model.version):
                pred = self._predict(model, lk)
        hit = _Computed(key, lk, pred, {z: i for i, z in enumerate(lk.zones)})
        self._cache[h] = hit  # one reference swap: a concurrent reader sees the old entry or the new one
        return hit

    def _forecast_horizon(self, h: int, zones: list[str] | None, now: pd.Timestamp,
                          compute: bool = True) -> dict[str, Forecast]:
        """Every zone asked at horizon ``h``, sliced from :meth:`_computed`."""
        model = self.models.get(h)  # read once: the whole batch uses one version, even if the poller swaps
        c = self._computed(h, model, now, compute)
        lk = dataclasses.replace(c.lookup, now=now)
        age_s = lk.age.total_seconds()
        _telemetry.observe_feature_age(h, age_s)
        reason = self._fallback_reason(lk, model)
        pred = c.pred if reason is None else None
        start = lk.feature_time.to_pydatetime()
        end = (lk.feature_time + pd.Timedelta(minutes=h)).to_pydatetime()
        stale, source = lk.stale, "model" if pred is not None else "seasonal_naive"  # per horizon, not per zone
        name, version = (None, None) if model is None else (model.name, model.version)
        out: dict[str, Forecast] = {}
        for z in lk.zones if zones is None else zones:
            i = c.index.get(z)
            if i is None:  # known to the zone list, but its first window came after this revision's lookup
                raise UnknownZoneError([z])
            why = reason
            if pred is not None:
                value = float(pred[i])
            else:
                value = lk.seasonal_naive(z)
                if not np.isfinite(value):
                    value, why = 0.0, f"{reason}; no seasonal-naive value (the history is shorter than a week): 0"
            out[z] = Forecast(
                zone=z,
                horizon_min=h,
                predicted_requests=value,
                target_start=start,
                target_end=end,
                feature_time=start,
                feature_age_s=age_s,
                stale=stale,
                source=source,
                model_name=name,
                model_version=version,
                fallback_reason=why,
            )
        return out

    def _fallback_reason(self, lk: FeatureLookup, model: LoadedModel | None) -> str | None:
        """Why this lookup is not answered by the model (None: it is)."""
        if lk.stale:
            return (
                f"stale features: the newest window closed {lk.age.total_seconds():.0f} s ago, beyond "
                f"serving.max_feature_age_s={self.settings.serving.max_feature_age_s:g}"
            )
        if model is None:
            return f"no champion loaded for {self._names[lk.matrix.horizon]}"
        missing = [c for c in model.feature_names if c not in lk.matrix.columns]
        if missing:
            return f"{model.name} v{model.version} needs features the online store does not build: {missing[:5]}"
        return None

    @staticmethod
    def _predict(model: LoadedModel, lk: FeatureLookup) -> np.ndarray:
        """The batch path's prediction (``training.forecast``): the model's feature order, float32, clipped at 0."""
        cols = lk.matrix.columns
        X = np.asarray(lk.matrix.values)[:, [cols.index(c) for c in model.feature_names]].astype(np.float32)
        return np.clip(model.booster.inplace_predict(X).astype(float), 0.0, None)

    # --- the rest of the API -------------------------------------------------------------------------------

    def zones(self) -> list[str]:
        zones = sorted(self.store.zones())
        self._known = frozenset(zones)
        return zones

    def readiness(self) -> Readiness:
        versions = self.models.versions()
        reasons = [
            f"no champion loaded for {self._names[h]} (train one: `ridecast train`)"
            for h, v in versions.items()
            if v is None
        ]
        if self.models.last_error and reasons:
            reasons.append(f"MLflow at {self.models.uri} did not answer: {self.models.last_error}")
        feature_time = None
        try:
            _since, wm = self.store.bounds()
            if wm is None:
                reasons.append(_EMPTY)
            else:
                feature_time = pd.Timestamp(wm, unit="ms", tz="UTC")
        except OnlineStoreError as exc:
            reasons.append(f"the online store did not answer: {exc}")
        if feature_time is None and self.feed_error:
            reasons.append(self.feed_error)
        return Readiness(not reasons, versions, feature_time, reasons)

    def history(self, zone: str, hours: int) -> "ZoneHistory":
        return zone_history(self.settings, zone, hours)

