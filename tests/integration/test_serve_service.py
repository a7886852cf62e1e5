"""The forecasting service a replica hosts, with real parts: MLflow (SQLite in a temp dir, and a real ``mlflow
server`` that is killed), Iceberg tables written by ``tests.lake_fixtures``, and both online stores (in-process and
a real Redis). No HTTP and no Ray here: those layers call exactly this object.

The point of the first test: a forecast the service answers is the champion's prediction on the training-set row
at the same cut-off (``training.dataset.build_frame``), i.e. what ``training.forecast`` would write for that instant.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ridecast.config import Settings
from ridecast.stack.process import free_port
from serve import (
    ForecastRequest,
    ForecastService,
    ModelSet,
    NoFeaturesError,
    UnknownHorizonError,
    UnknownZoneError,
    bootstrap_from_lake,
    get_store,
    zone_history,
)
from tests.lake_fixtures import synthetic_events, write_lake
from training.backtest import run_backtest_and_fit
from training.dataset import build_frame, load_lake
from training.forecast import forecast_batch
from training.registry import CHAMPION, configure_mlflow, load_champion, model_name, register_run

pytestmark = pytest.mark.integration

ZONES = ["A", "B", "C", "D"]
GOOD = {"max_depth": 4, "eta": 0.1}
BAD = {"max_depth": 1, "eta": 0.001}
NOW = pd.Timestamp("2025-03-12 10:30", tz="UTC")  # the live stream's "now": 18:30 in Singapore, a busy slot


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[Settings, dict[int, int], dict[int, int]]:
    """A lake and an MLflow registry with, per horizon, a champion (v1) and a rejected challenger (v2)."""
    s = Settings(home=tmp_path_factory.mktemp("serve-core"))
    s.training.backtest_days = 1
    s.training.min_history_days = 7
    s.training.actor = "test-suite"
    write_lake(s, synthetic_events(ZONES, "2025-03-03", 10, seed=11, base_per_hour=30), until=NOW)
    versions = []
    for params, rounds in ((GOOD, 60), (BAD, 2)):
        s.training.xgb_params, s.training.num_boost_round = params, rounds
        outcome = run_backtest_and_fit(load_lake(s), s, s.training.horizons, backend="local")
        _, decisions = register_run(s, outcome, plots=False)
        versions.append({h: d.version for h, d in decisions.items()})
    champion, challenger = versions
    client = MlflowClient(s.mlflow_tracking_uri)
    for h in s.training.horizons:  # the premise: v1 serves, v2 only waits
        assert int(client.get_model_version_by_alias(model_name(s, h), CHAMPION).version) == champion[h]
    return s, champion, challenger


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _settings(base: Settings, backend: str, request: pytest.FixtureRequest) -> Settings:
    s = base.model_copy(deep=True)
    s.serving.backend = backend
    s.serving.run_feed = False  # the feed thread is exercised with a real broker in test_online_store
    s.serving.model_poll_s = 3600  # tests call refresh() themselves
    s.serving.key_prefix = f"t{uuid.uuid4().hex[:10]}"
    if backend == "redis":
        s.serving.redis_url = request.getfixturevalue("redis_url")
    return s


def _service(s: Settings, models: ModelSet | None = None) -> ForecastService:
    store = get_store(s)
    if s.serving.backend == "redis":  # a shared store is filled by its one feed; here, by the lake once
        bootstrap_from_lake(store, s)
    svc = ForecastService(s, store=store, models=models)
    svc.start()
    return svc


def _close(svc: ForecastService) -> None:
    svc.store.clear()
    svc.close()


@dataclass
class Served:
    s: Settings
    svc: ForecastService
    champion: dict[int, int]
    challenger: dict[int, int]


@pytest.fixture
def served(registry, backend, request) -> Served:
    """A started service over the fixture's lake and registry, on each store backend."""
    base, champion, challenger = registry
    s = _settings(base, backend, request)
    svc = _service(s)
    yield Served(s, svc, champion, challenger)
    _close(svc)


def _fresh(svc: ForecastService) -> pd.Timestamp:
    return svc.readiness().feature_time + pd.Timedelta(seconds=60)


def _training_rows(s: Settings, t: pd.Timestamp, h: int) -> pd.DataFrame:
    return build_frame(load_lake(s), pd.DatetimeIndex([t]), h, s, with_label=False).set_index("zone")


def test_every_zone_and_horizon_is_the_champions_prediction_on_the_training_row(served):
    s, svc, champion = served.s, served.svc, served.champion
    ready = svc.readiness()
    assert ready.ready, ready.reasons
    assert ready.models == champion
    assert svc.zones() == ZONES
    now = _fresh(svc)
    got = svc.forecast(None, s.training.horizons, now=now)
    assert [(f.zone, f.horizon_min) for f in got] == [(z, h) for z in ZONES for h in s.training.horizons]
    t = ready.feature_time
    assert t == NOW  # the newest closed window of the live stream
    for h in s.training.horizons:
        bst, version = load_champion(s, h)
        rows = _training_rows(s, t, h)
        want = np.clip(bst.inplace_predict(rows.loc[ZONES, bst.feature_names].to_numpy(np.float32)), 0, None)
        mine = [f for f in got if f.horizon_min == h]
        assert all(f.source == "model" and f.fallback_reason is None and not f.stale for f in mine)
        assert all(f.model_version == version == champion[h] for f in mine)
        assert all(f.model_name == model_name(s, h) for f in mine)
        assert all(f.target_start == f.feature_time == t for f in mine)
        assert all(f.target_end == t + pd.Timedelta(minutes=h) and f.feature_age_s == 60.0 for f in mine)
        np.testing.assert_allclose([f.predicted_requests for f in mine], want, rtol=1e-6)
        assert len({f.predicted_requests for f in mine}) > 1  # really per zone, not one constant


def test_stale_features_fall_back_to_seasonal_naive_flagged(served):
    s, svc, champion = served.s, served.svc, served.champion
    t = svc.readiness().feature_time
    late = t + pd.Timedelta(seconds=s.serving.max_feature_age_s + 1)
    got = svc.forecast(ZONES, [60], now=late)
    rows = _training_rows(s, t, 60)
    for f in got:
        assert f.stale and f.source == "seasonal_naive"
        assert "stale features" in f.fallback_reason and "max_feature_age_s" in f.fallback_reason
        assert f.predicted_requests == rows.loc[f.zone, "lag_7d"]  # requests in the same window last week
        assert f.model_version == champion[60]  # loaded, but not what answered
    # at exactly the limit the features are still fresh
    edge = svc.forecast(ZONES, [60], now=t + pd.Timedelta(seconds=s.serving.max_feature_age_s))
    assert all(f.source == "model" and not f.stale for f in edge)


def test_without_a_champion_forecasts_fall_back_and_the_replica_is_not_ready(registry, backend, request, tmp_path):
    base, _, _ = registry
    s = _settings(base, backend, request)
    s.training.mlflow_tracking_uri = f"sqlite:///{tmp_path / 'empty-mlflow.db'}"  # a registry with no models
    svc = _service(s)
    try:
        ready = svc.readiness()
        assert not ready.ready and ready.models == {h: None for h in s.training.horizons}
        assert ready.feature_time is not None
        assert [r for r in ready.reasons if "no champion loaded for ridecast-demand-h" in r] and len(ready.reasons) == 3
        t = ready.feature_time
        rows = _training_rows(s, t, 15)
        for f in svc.forecast(["A", "B"], [15], now=_fresh(svc)):
            assert f.source == "seasonal_naive" and not f.stale
            assert f.fallback_reason == "no champion loaded for ridecast-demand-h15"
            assert f.model_name is None and f.model_version is None
            assert f.predicted_requests == rows.loc[f.zone, "lag_7d"]
    finally:
        _close(svc)
    # a registry that cannot be opened at all: an error in the result, nothing raised, nothing loaded
    (tmp_path / "a-file").write_text("not a directory")
    s.training.mlflow_tracking_uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    models = ModelSet(s)
    res = models.refresh()
    assert res.error and res.changed == {} and models.versions() == {h: None for h in s.training.horizons}


def test_an_empty_store_is_not_ready_and_says_so(registry, backend, request):
    base, _, _ = registry
    s = _settings(base, backend, request)
    svc = ForecastService(s)
    svc.models.refresh()
    try:
        ready = svc.readiness()
        assert not ready.ready and ready.feature_time is None
        assert ready.reasons == ["the online store holds no features yet (is the feature feed running?)"]
        with pytest.raises(NoFeaturesError):
            svc.forecast(["A"], [15])
    finally:
        svc.close()


def test_a_moved_alias_is_served_after_refresh(served):
    s, svc, champion, challenger = served.s, served.svc, served.champion, served.challenger
    client = MlflowClient(s.mlflow_tracking_uri)
    try:
        now = _fresh(svc)
        before = svc.forecast(["A"], s.training.horizons, now=now)
        held = svc.models.get(60)  # a request in flight holds this object
        for h in s.training.horizons:
            client.set_registered_model_alias(model_name(s, h), CHAMPION, str(challenger[h]))
        res = svc.models.refresh()
        assert res.error is None
        assert res.changed == {h: (champion[h], challenger[h]) for h in s.training.horizons}
        assert svc.models.refresh().changed == {}  # nothing moved since
        after = svc.forecast(["A"], s.training.horizons, now=now)
        assert [f.model_version for f in before] == [champion[h] for h in s.training.horizons]
        assert [f.model_version for f in after] == [challenger[h] for h in s.training.horizons]
        assert held.version == champion[60] and svc.models.get(60).version == challenger[60]
        rows = _training_rows(s, svc.readiness().feature_time, 60)
        new = svc.models.get(60).booster
        want = float(np.clip(new.inplace_predict(rows.loc[["A"], new.feature_names].to_numpy(np.float32)), 0, None)[0])
        assert after[-1].predicted_requests == pytest.approx(want, rel=1e-6)
        assert after[-1].predicted_requests != before[-1].predicted_requests
    finally:
        for h in s.training.horizons:
            client.set_registered_model_alias(model_name(s, h), CHAMPION, str(champion[h]))


def test_a_computed_answer_is_reused_until_the_store_or_a_champion_moves(served):
    """``answer_computed`` (what a replica answers without waiting for a batch) never computes: it answers what the
    batch answers while the store's revision and the champions are unchanged, and nothing once either moved."""
    s, svc, champion, challenger = served.s, served.svc, served.champion, served.challenger
    now = _fresh(svc)
    both = ForecastRequest(("A", "C"), tuple(s.training.horizons))
    assert svc.answer_computed(both, now=now) is None  # nothing computed yet: the batch must do it
    batched = svc.forecast_many([both], now=now)[0]
    assert svc.answer_computed(both, now=now) == batched
    later = now + pd.Timedelta(seconds=40)  # the clock moves: ages are per request, not cached
    assert [f.feature_age_s for f in svc.answer_computed(both, now=later)] == [f.feature_age_s + 40 for f in batched]
    assert isinstance(svc.answer_computed(ForecastRequest(("NOWHERE",), (60,)), now=now), UnknownZoneError)
    svc.store.upsert(list(svc.store.latest("A").values()))  # the feed stored windows: a new revision
    assert svc.answer_computed(both, now=now) is None
    assert svc.forecast_many([both], now=now)[0] == batched  # the same windows again: the same answers
    assert svc.answer_computed(ForecastRequest(("C",), (60,)), now=now) == [f for f in batched if f.zone == "C"][-1:]
    client = MlflowClient(s.mlflow_tracking_uri)
    try:
        client.set_registered_model_alias(model_name(s, 60), CHAMPION, str(challenger[60]))
        svc.models.refresh()
        assert svc.answer_computed(ForecastRequest(("A",), (60,)), now=now) is None  # a new champion
        assert svc.answer_computed(ForecastRequest(("A",), (15,)), now=now) is not None  # its horizon alone
        svc.forecast_many([ForecastRequest(("A",), (60,))], now=now)
        assert [f.model_version for f in svc.answer_computed(both, now=now)] == [
            champion[15], champion[30], challenger[60]] * 2
    finally:
        client.set_registered_model_alias(model_name(s, 60), CHAMPION, str(champion[60]))


def test_one_bad_request_does_not_fail_the_batch(served):
    s, svc = served.s, served.svc
    now = _fresh(svc)
    out = svc.forecast_many(
        [
            ForecastRequest(("B",), (60,)),
            ForecastRequest(("A", "NOWHERE"), (15,)),
            ForecastRequest(None, (15, 30)),
            ForecastRequest(("C",), (20, 60)),
            ForecastRequest(("D", "A"), (30, 15)),
        ],
        now=now,
    )
    assert [f.zone for f in out[0]] == ["B"] and out[0][0].source == "model"
    assert isinstance(out[1], UnknownZoneError) and out[1].zones == ["NOWHERE"]
    assert isinstance(out[3], UnknownHorizonError) and "20" in str(out[3]) and "15, 30, 60" in str(out[3])
    assert [(f.zone, f.horizon_min) for f in out[2]] == [(z, h) for z in ZONES for h in (15, 30)]
    assert [(f.zone, f.horizon_min) for f in out[4]] == [("D", 30), ("D", 15), ("A", 30), ("A", 15)]
    # the batch answers what single requests answer
    single = {(f.zone, f.horizon_min): f for f in svc.forecast(None, s.training.horizons, now=now)}
    for f in out[0] + out[2] + out[4]:
        assert f == single[(f.zone, f.horizon_min)]
    with pytest.raises(UnknownZoneError, match="NOWHERE"):
        svc.forecast(["NOWHERE"], [15])
    with pytest.raises(UnknownHorizonError):
        svc.forecast(["A"], [45])


# --- MLflow goes away ------------------------------------------------------------------------------------------


class _MlflowServer:
    """A real ``mlflow server`` over the fixture's SQLite registry, on a free 127.0.0.1 port, in its own session
    (so a kill takes its workers too)."""

    def __init__(self, backend_uri: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend_uri,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"mlflow server not up after {timeout_s} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def test_an_unreachable_mlflow_keeps_the_loaded_models(registry, request, tmp_path, monkeypatch):
    base, champion, _ = registry
    s = _settings(base, "memory", request)
    server = _MlflowServer(base.mlflow_tracking_uri, tmp_path / "mlflow-server.log")
    try:
        server.wait_ready()
        s.training.mlflow_tracking_uri = server.url
        # the service's bound, not an operator's: MLflow's own defaults would retry for minutes
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
        svc = _service(s)
        try:
            assert svc.readiness().ready and svc.models.versions() == champion
            server.kill()
            t0 = time.monotonic()
            res = svc.models.refresh()
            took = time.monotonic() - t0
            assert res.error and "ridecast-demand-h15" in res.error and res.changed == {}
            # bounded: with MLflow's default 7 retries and exponential backoff one poll takes minutes
            assert took < 60, f"a refresh against a dead tracking server took {took:.0f} s"
            got = svc.forecast(ZONES, s.training.horizons, now=_fresh(svc))
            assert all(f.source == "model" and f.model_version == champion[f.horizon_min] for f in got)
            ready = svc.readiness()
            assert ready.ready and ready.models == champion  # it still serves what it has
            # the poller thread survives failing polls
            s.serving.model_poll_s = 0.05
            stop = threading.Event()
            poller = threading.Thread(target=svc.models.run, args=(stop,), daemon=True)
            before = svc.models.last_refresh
            poller.start()
            deadline = time.monotonic() + 120
            while svc.models.last_refresh == before:
                assert time.monotonic() < deadline, "the poller never polled"
                time.sleep(0.1)
            assert poller.is_alive() and svc.models.last_error
            stop.set()
            poller.join(timeout=120)
            assert not poller.is_alive()
        finally:
            svc.close()
    finally:
        server.kill()


# --- history ---------------------------------------------------------------------------------------------------


def test_history_has_actuals_and_past_forecasts(registry):
    base, champion, _ = registry
    s = base.model_copy(deep=True)
    ends = zone_history(s, "A", 1).until
    at = ends - pd.Timedelta(hours=3)
    batch = forecast_batch(s, at=at)
    assert batch.rows == len(ZONES) * len(s.training.horizons)
    hist = zone_history(s, "A", 6)
    assert hist.zone == "A" and hist.until == ends and hist.since == ends - pd.Timedelta(hours=6)
    # actuals: the 15-minute window at every 5-minute slide in (since, until], as gold holds them
    from training.lake_io import read_table

    want = read_table(s, "gold.zone_features")
    want = want[(want["zone"] == "A") & (want["window_minutes"] == 15)]
    want = want.assign(window_end=pd.to_datetime(want["window_end"], utc=True)).set_index("window_end")["requests"]
    a = hist.actuals.set_index("window_end")
    assert a.index.is_monotonic_increasing and (a["window_minutes"] == 15).all()
    assert a.index[0] > hist.since and a.index[-1] == hist.until
    assert (a.index.to_series().diff().dropna() == pd.Timedelta(minutes=5)).all()
    assert a["requests"].to_dict() == want.reindex(a.index, fill_value=0).to_dict()
    assert a["requests"].sum() > 0
    # past forecasts: the batch's rows for this zone, one per horizon
    f = hist.forecasts
    assert list(f["horizon_min"]) == s.training.horizons
    assert (f["feature_time"] == at).all() and (f["target_start"] == at).all()
    assert list(f["model_version"]) == [champion[h] for h in s.training.horizons]
    mine = batch.forecasts[batch.forecasts["zone"] == "A"].sort_values("horizon_min")
    np.testing.assert_allclose(f["predicted_requests"], mine["predicted_requests"])
    # a shorter span does not reach back to the batch
    assert zone_history(s, "A", 2).forecasts.empty
    # the service delegates; an unknown zone is typed
    svc = ForecastService(_settings(base, "memory", None))
    try:
        assert svc.history("A", 6).actuals.equals(hist.actuals)
        with pytest.raises(UnknownZoneError, match="NOWHERE"):
            svc.history("NOWHERE", 6)
    finally:
        svc.close()


# --- the feed keeps an in-process store fresh -----------------------------------------------------------------


def test_the_feed_thread_brings_newer_windows_and_forecasts_follow(registry, request, tmp_path):
    """Memory backend, ``run_feed`` by default: the lake bootstrap ends at NOW, the topic then carries the next
    half hour's windows (with repeats), and forecasts move to the new cut-off, still equal to training rows."""
    from kafka import KafkaProducer

    from ridecast.stack.broker import ensure_topics
    from tests.lake_fixtures import events_frame, gold_windows, online_message
    from training.dataset import lake_from_frames

    base, champion, _ = registry
    s = _settings(base, "memory", request)
    s.serving.run_feed = None  # the default: a memory store runs its own feed
    s.kafka.bootstrap_servers = request.getfixturevalue("broker")
    s.kafka.features_topic = f"zone-features-{uuid.uuid4().hex[:8]}"
    ensure_topics(s)
    later = NOW + pd.Timedelta(minutes=30)
    silver = events_frame(synthetic_events(ZONES, "2025-03-03", 10, seed=11, base_per_hour=30))
    silver = silver[silver["event_time"] < later].reset_index(drop=True)
    gold = gold_windows(silver, s.flink.window_minutes, s.flink.slide_minutes)
    gold = gold[gold["window_end"] <= later]
    fresh = gold[gold["window_end"] > NOW].sort_values("window_end", kind="stable")
    svc = ForecastService(s)
    svc.start()
    try:
        assert svc.runs_feed and svc.readiness().feature_time == NOW
        # answered once before the feed moves: the replica's cached vectors must not outlive the windows
        assert {f.feature_time for f in svc.forecast(ZONES, [60], now=NOW + pd.Timedelta(seconds=30))} == {NOW}
        producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, acks="all")
        msgs = [online_message(r) for _, r in fresh.iterrows()]
        for m in msgs + msgs[:20]:  # at-least-once: repeats are absorbed by the store's key
            producer.send(s.kafka.features_topic, m)
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 120
        while svc.readiness().feature_time != later:
            assert time.monotonic() < deadline, f"the feed did not bring {later}: {svc.readiness()}"
            time.sleep(0.2)
        got = svc.forecast(ZONES, [60], now=later + pd.Timedelta(seconds=30))
        lake = lake_from_frames(silver, gold, slide_minutes=s.flink.slide_minutes)
        rows = build_frame(lake, pd.DatetimeIndex([later]), 60, s, with_label=False).set_index("zone")
        bst = svc.models.get(60).booster
        want = np.clip(bst.inplace_predict(rows.loc[ZONES, list(bst.feature_names)].to_numpy(np.float32)), 0, None)
        assert all(f.feature_time == later and f.source == "model" for f in got)
        np.testing.assert_allclose([f.predicted_requests for f in got], want, rtol=1e-6)
        assert svc.feed_error is None
    finally:
        svc.close()
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("ridecast-"))


def test_a_model_with_its_own_feature_order_gets_its_columns_by_name(registry, request, tmp_path):
    """A champion trained on a subset of the features, in another order (an ablation, an older feature list):
    the service hands it its columns by name, never by position."""
    import mlflow
    import mlflow.xgboost
    import xgboost as xgb

    from training.dataset import cutoff_grid

    base, _, _ = registry
    s = _settings(base, "memory", request)
    s.training.mlflow_tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lake = load_lake(s)
    frame = build_frame(lake, cutoff_grid(lake, s, 60), 60, s).dropna(subset=["y"])
    feats = ["recent_h", "lag_7d", "w15_requests_lag0", "hour_of_week"]  # not the definition's order
    bst = xgb.train({"max_depth": 3, "eta": 0.3, "seed": 0}, xgb.DMatrix(frame[feats], frame["y"]), 20)
    assert list(bst.feature_names) == feats
    configure_mlflow(s)  # this registry, its experiment
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(bst, name="m", registered_model_name=model_name(s, 60))
    MlflowClient(s.mlflow_tracking_uri).set_registered_model_alias(
        model_name(s, 60), CHAMPION, str(info.registered_model_version)
    )
    svc = _service(s)
    try:
        assert svc.models.get(60).feature_names == tuple(feats)
        got = svc.forecast(ZONES, [60], now=_fresh(svc))
        rows = _training_rows(s, NOW, 60)
        want = np.clip(bst.inplace_predict(rows.loc[ZONES, feats].to_numpy(np.float32)), 0, None)
        assert all(f.source == "model" for f in got)
        np.testing.assert_allclose([f.predicted_requests for f in got], want, rtol=1e-6)
    finally:
        _close(svc)


def test_models_load_from_the_configured_registry_whatever_the_process_wide_uri(registry, tmp_path, monkeypatch):
    """A replica started from a clean shell has no process-wide MLflow URI (or another one): the champions must
    still come from ``settings.mlflow_tracking_uri``. mlflow 3.17 resolves ``models:/`` URIs with the global
    URI even when one is passed, which made such a replica find no model."""
    import mlflow

    s, champion, _ = registry
    monkeypatch.chdir(tmp_path)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    try:
        models = ModelSet(s)
        res = models.refresh()
        assert res.error is None, res.error
        assert models.versions() == champion
    finally:
        mlflow.set_tracking_uri(before)
    assert not (tmp_path / "mlflow.db").exists()
