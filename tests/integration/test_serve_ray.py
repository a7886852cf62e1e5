"""The forecasting service on real Ray Serve (127.0.0.1), with real MLflow champions, a real Iceberg lake and the real
broker's features topic: one service per module, started as ``ridecast serve`` starts it (the managed ``python -m
serve`` process of ``ridecast.stack.serving``), two replicas of half a CPU each.

What it checks, each over HTTP: every zone and horizon answered; schemathesis over /openapi.json finds no 5xx; the
champion alias moved under load answers every request and switches the responses to the new version; the feature
feed silent makes responses stale-flagged (seasonal-naive) while the service stays up, and a resumed feed makes them
fresh again; a replica killed with ``kill -9`` under load is replaced by Serve, with the failed requests counted and
bounded; the CLI's ``serve``, ``forecast`` and ``down`` on the same service, and no Ray process left after ``down``."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pandas as pd
import psutil
import pytest
import schemathesis
import typer
from kafka import KafkaProducer
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ridecast.config import Settings
from ridecast.stack import lifecycle
from ridecast.stack.broker import ensure_topics
from ridecast.stack.process import free_port
from ridecast.stack.serving import replica_pids, replica_urls, serving_process
from tests.lake_fixtures import online_message, synthetic_events, write_lake
from tests.openapi_fuzz import MODES, fuzz_openapi
from tests.streaming import stream_env, wait_for
from training.backtest import run_backtest_and_fit
from training.dataset import load_lake
from training.registry import CHAMPION, model_name, register_run

pytestmark = pytest.mark.integration

ZONES = ["BEDOK", "ORCHARD", "TAMPINES", "WOODLANDS"]
HORIZONS = [15, 30, 60]
# Above the 5-minute slide (a window that just closed is up to a slide old when it is published) with room for
# a slow machine; the lake's newest window is older than this from the start (LAKE_LAG), so the feed is silent.
MAX_AGE_S = 600.0
LAKE_LAG = pd.Timedelta(minutes=20)


@dataclass
class Load:
    """A bounded load loop in threads: GET one forecast per iteration, counting answers by status and version."""

    url: str
    threads: int = 4
    stop: threading.Event = field(default_factory=threading.Event)
    ok: Counter = field(default_factory=Counter)  # model version -> answers
    failed: list = field(default_factory=list)
    _workers: list = field(default_factory=list)

    def _run(self, i: int) -> None:
        with httpx.Client(timeout=30.0) as c:
            n = 0
            while not self.stop.is_set():
                zone, h = ZONES[n % len(ZONES)], HORIZONS[(n + i) % len(HORIZONS)]
                n += 1
                try:
                    r = c.get(f"{self.url}/v1/forecast/{zone}", params={"horizon": h})
                    if r.status_code == 200:
                        self.ok[_forecasts(r.json())[0]["model_version"]] += 1
                    else:
                        self.failed.append((r.status_code, r.text[:200]))
                except httpx.HTTPError as exc:
                    self.failed.append((type(exc).__name__, str(exc)[:200]))

    def __enter__(self) -> "Load":
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self._workers:
            t.join(timeout=60)

    @property
    def answered(self) -> int:
        return sum(self.ok.values())


def _forecasts(body) -> list[dict]:
    return body["forecasts"] if isinstance(body, dict) else body


def _train_and_register(s: Settings, rounds: int) -> dict[int, int]:
    """One training run of every horizon (single-process backend), registered; returns horizon -> version."""
    s.training.num_boost_round = rounds
    outcome = run_backtest_and_fit(load_lake(s), s, HORIZONS, backend="local")
    _run_id, decisions = register_run(s, outcome, plots=False)
    return {h: d.version for h, d in decisions.items()}


@pytest.fixture(scope="module")
def served(broker, tmp_path_factory):
    """Lake ending about now, champions of every horizon, the service running with a short model poll."""
    extra = {
        "RIDECAST_TRAINING__BACKTEST_DAYS": "2",
        "RIDECAST_TRAINING__MIN_HISTORY_DAYS": "7",
        "RIDECAST_TRAINING__ACTOR": "test-suite",
        "RIDECAST_SERVING__PORT": str(free_port()),
        "RIDECAST_SERVING__MODEL_POLL_S": "1",
        "RIDECAST_SERVING__MAX_FEATURE_AGE_S": str(MAX_AGE_S),
        "RIDECAST_SERVING__MIN_REPLICAS": "2",
        "RIDECAST_SERVING__MAX_REPLICAS": "2",
        "RIDECAST_SERVING__REPLICA_NUM_CPUS": "0.5",
        "RIDECAST_SERVING__START_TIMEOUT_S": "420",
    }
    with stream_env(tmp_path_factory.mktemp("serve-ray"), broker, **extra) as s:
        ensure_topics(s, broker)
        end = pd.Timestamp.now(tz="UTC").floor(f"{s.flink.slide_minutes}min") - pd.Timedelta(
            minutes=max(s.flink.window_minutes)) - LAKE_LAG  # events stop here; the last window closes LAKE_LAG ago
        _silver, gold = write_lake(s, synthetic_events(ZONES, end - pd.Timedelta(days=11), 11, seed=3,
                                                       base_per_hour=30))
        s.training.xgb_params = {"max_depth": 4, "eta": 0.1}
        first = _train_and_register(s, 40)
        client = MlflowClient(tracking_uri=s.mlflow_tracking_uri)
        for h in HORIZONS:  # whatever the gate said, the first model of each horizon is the champion
            client.set_registered_model_alias(model_name(s, h), CHAMPION, first[h])
        try:
            with pytest.MonkeyPatch.context() as mp:
                # training pointed this process's MLflow at the test's database through MLFLOW_TRACKING_URI; a
                # user's shell has no such variable, and the service must not need one
                mp.delenv("MLFLOW_TRACKING_URI", raising=False)
                mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
                # as an earlier in-process service of the same session leaves it: the service must still gather its
                # driver's and replicas' samples in its own settings.metrics_dir
                mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("foreign-metrics")))
                up = lifecycle.up_serve(s)
            yield s, up, first, gold
        finally:
            lifecycle.down(s)


def test_every_zone_and_horizon_over_http(served):
    s, up, first, _gold = served
    assert up.url == s.serve_url and up.mode == "ray"
    r = httpx.get(f"{up.url}/v1/zones", timeout=30)
    assert r.status_code == 200 and sorted(r.json() if isinstance(r.json(), list) else r.json()["zones"]) == ZONES
    for zone in ZONES:
        for h in HORIZONS:
            r = httpx.get(f"{up.url}/v1/forecast/{zone}", params={"horizon": h}, timeout=30)
            assert r.status_code == 200, r.text
            (f,) = _forecasts(r.json())
            assert f["zone"] == zone and f["horizon_min"] == h and f["predicted_requests"] >= 0
            assert f["model_version"] == first[h]
    r = httpx.get(f"{up.url}/v1/forecast/NOWHERE", params={"horizon": 60}, timeout=30)
    assert r.status_code == 404, r.text
    # /readyz answers once one replica is ready; the second may still be loading its lake and models
    wait_for(lambda: len(replica_pids(s)) == 2, 300, "both replicas running", lambda: str(replica_pids(s)))
    # the driver reports Serve's replica count; /metrics on any replica merges every process's samples
    wait_for(lambda: "ridecast_replicas 2.0" in httpx.get(f"{up.url}/metrics", timeout=30).text, 300,
             "the replicas gauge on /metrics", lambda: httpx.get(f"{up.url}/metrics", timeout=30).text[-2000:])


def test_each_replica_answers_on_its_own_port_as_through_the_proxy(served):
    """Direct ingress: past Serve's ingress, each replica's own HTTP server (on 127.0.0.1, in the configured range)
    gives the answer the proxy gives, from the same app, batch queue and model."""
    s, up, first, _gold = served
    wait_for(lambda: len(replica_urls(s)) == 2, 300, "both replicas' own HTTP servers", lambda: str(replica_urls(s)))
    lo, hi = s.serving.direct_ingress_ports

    def answer(url: str) -> list[dict]:
        r = httpx.get(f"{url}/v1/forecast/TAMPINES", params={"horizon": 60}, timeout=30)
        assert r.status_code == 200, r.text
        # all but the feature age (now - feature time), also named in a stale answer's reason
        return [{k: v for k, v in f.items() if k not in ("feature_age_s", "fallback_reason")}
                for f in _forecasts(r.json())]

    via_proxy = answer(up.url)
    assert via_proxy[0]["model_version"] == first[60]
    for url in replica_urls(s):
        host, port = url.removeprefix("http://").split(":")
        assert host == "127.0.0.1" and lo <= int(port) <= hi
        assert answer(url) == via_proxy
        assert httpx.get(f"{url}/v1/forecast/NOWHERE", params={"horizon": 60}, timeout=30).status_code == 404
    health = {p.name: p for p in lifecycle.status(s).processes}["serve"].health
    assert "direct: http://127.0.0.1:" in health, health


def _batches(url: str) -> float:
    """How many ``@serve.batch`` batches every replica ran so far (``ridecast_batch_size``'s count on /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text) if family.name == "ridecast_batch_size"
               for sample in family.samples if sample.name == "ridecast_batch_size_count")


def test_requests_between_slides_are_answered_without_a_batch(served):
    """While the features and champions stay as they are, a replica answers from what its last batch computed
    (``ForecastService.answer_computed``), without queueing for ``@serve.batch``: requests one after the other
    form no batch each, and answer what a batch answered."""
    s, up, first, _gold = served
    wait_for(lambda: len(replica_urls(s)) == 2, 300, "both replicas' own HTTP servers", lambda: str(replica_urls(s)))
    url = replica_urls(s)[0]

    def ask() -> list[dict]:
        r = httpx.get(f"{url}/v1/forecast/BEDOK", params={"horizon": 30}, timeout=30)
        assert r.status_code == 200, r.text
        return [{k: v for k, v in f.items() if k not in ("feature_age_s", "fallback_reason")}
                for f in _forecasts(r.json())]

    want = ask()  # computes, if this replica had not yet
    assert want[0]["model_version"] == first[30]
    before = _batches(up.url)
    assert [ask() for _ in range(20)] == [want] * 20
    # a feed that stores windows meanwhile (a new store revision) may cost one batch: never one per request
    assert _batches(up.url) - before <= 2


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_schemathesis_finds_no_server_error_through_serve(served, mode):
    """The same requests as the plain app's suite, through Serve's proxy and the replicas' @serve.batch: no 5xx."""
    _s, up, _first, _gold = served
    result = fuzz_openapi(up.url, mode)
    assert result.operations == 7
    assert not result.server_errors, "\n".join(result.server_errors[:10])
    assert len(result.exercised) >= (7 if mode == schemathesis.GenerationMode.POSITIVE else 3), result.exercised


def test_alias_moves_under_load_without_a_failed_request(served):
    s, up, first, _gold = served
    second = _train_and_register(s, 20)
    assert all(second[h] != first[h] for h in HORIZONS)
    client = MlflowClient(tracking_uri=s.mlflow_tracking_uri)
    with Load(up.url) as load:
        wait_for(lambda: load.answered >= 20, 120, "answers before the move")
        for h in HORIZONS:
            client.set_registered_model_alias(model_name(s, h), CHAMPION, second[h])
        moved_at = load.answered
        new_versions = set(second.values()) - set(first.values())
        wait_for(lambda: sum(load.ok[v] for v in new_versions) >= 20, 180, "answers from the new versions")

        # each replica polls MLflow on its own and switches within a poll (and a model load) of the move: asked on
        # its own port (direct ingress), every replica comes to name only the new versions, still under load
        def on_new_versions(url: str) -> bool:
            return all(_forecasts(httpx.get(f"{url}/v1/forecast/{ZONES[0]}", params={"horizon": h}, timeout=30)
                                  .json())[0]["model_version"] == second[h] for h in HORIZONS)

        wait_for(lambda: len(replica_urls(s)) == 2, 120, "both replicas' own ports", lambda: str(replica_urls(s)))
        for url in replica_urls(s):
            wait_for(lambda url=url: on_new_versions(url), 120, f"replica {url} on the new versions")
    print(f"alias move under load: {load.answered} answered ({moved_at} before the move), "
          f"{len(load.failed)} failed; by version {dict(load.ok)}")
    assert load.failed == []
    # so through the proxy, whichever replica it picks, a round of requests names only the new versions
    for zone in ZONES:
        for h in HORIZONS:
            (f,) = _forecasts(httpx.get(f"{up.url}/v1/forecast/{zone}", params={"horizon": h}, timeout=30).json())
            assert f["model_version"] == second[h]


def _publish_fresh_windows(s: Settings, gold: pd.DataFrame) -> pd.Timestamp:
    """The feature job's online messages for a window closing now: each zone's newest windows, moved forward."""
    end = pd.Timestamp.now(tz="UTC").floor(f"{s.flink.slide_minutes}min")
    newest = gold.sort_values("window_end").groupby(["zone", "window_minutes"]).tail(1)
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers)
    try:
        for row in newest.to_dict("records"):
            shift = end - pd.Timestamp(row["window_end"])
            row = {**row, "window_start": pd.Timestamp(row["window_start"]) + shift, "window_end": end,
                   "computed_at": end}
            producer.send(s.kafka.features_topic, online_message(row))
        producer.flush(30)
    finally:
        producer.close()
    return end


def test_feed_silent_then_stale_flagged_then_fresh_again(served):
    s, up, _first, gold = served

    def answer(zone="TAMPINES"):
        r = httpx.get(f"{up.url}/v1/forecast/{zone}", params={"horizon": 60}, timeout=30)
        assert r.status_code == 200, r.text
        return _forecasts(r.json())[0]

    # Nothing on the features topic: the newest window is the lake's, older than MAX_AGE_S -> stale-flagged
    # seasonal-naive answers, and the service stays up.
    f = answer()
    assert f["stale"], f
    assert f["source"] == "seasonal_naive" and f["fallback_reason"] and f["feature_age_s"] > MAX_AGE_S
    assert httpx.get(f"{up.url}/healthz", timeout=30).status_code == 200

    # The feed resumes: every replica's feed thread reads the window closing now -> fresh, from the model.
    end = _publish_fresh_windows(s, gold)
    seen: dict = {}

    def fresh() -> bool:
        seen["f"] = answer()
        return not seen["f"]["stale"]

    wait_for(fresh, 120, "fresh features after the feed resumed", lambda: str(seen.get("f")))
    f = seen["f"]
    assert f["source"] == "model" and pd.Timestamp(f["feature_time"]) == end
    assert f["feature_age_s"] < MAX_AGE_S and f["fallback_reason"] is None
    # every zone's windows arrived on both replicas (each runs its own feed): rounds of answers all fresh
    wait_for(lambda: all(not answer(z)["stale"] for z in ZONES * 3), 120, "every zone fresh on every replica")


def test_replica_killed_under_load_is_replaced(served):
    s, up, _first, _gold = served
    before = replica_pids(s)
    assert len(before) == 2
    with Load(up.url) as load:
        wait_for(lambda: load.answered >= 20, 120, "answers before the kill")
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = load.answered
        wait_for(lambda: len(set(replica_pids(s)) - set(before)) == 1 and len(replica_pids(s)) == 2, 240,
              "Serve to replace the killed replica")
        replaced_at = load.answered
        wait_for(lambda: load.answered >= replaced_at + 20, 120, "answers after the replacement")
    print(f"kill -9 of replica {victim} under load: {load.answered} answered ({killed_at} before the kill), "
          f"{len(load.failed)} failed: {Counter(str(f[0]) for f in load.failed)}")
    assert victim not in replica_pids(s)
    # bounded: at most the requests in flight on the killed replica (max_ongoing_requests each of the threads)
    assert len(load.failed) <= s.serving.max_ongoing_requests
    assert httpx.get(f"{up.url}/readyz", timeout=30).status_code == 200


def test_cli_serve_forecast_down(served):
    from ridecast.commands import serve as serve_cmd
    from ridecast.commands import stack as stack_cmd

    s, up, first, _gold = served
    app = typer.Typer()
    serve_cmd.register(app)
    stack_cmd.register(app)
    runner = CliRunner()
    env = {"COLUMNS": "250"}
    out = runner.invoke(app, ["serve"], env=env)  # already running: reused, same URL
    assert out.exit_code == 0, out.output
    assert up.url in out.stdout and "curl" in out.stdout
    out = runner.invoke(app, ["forecast", "--zone", "TAMPINES", "--horizon", "60"], env=env)
    assert out.exit_code == 0, out.output
    assert "TAMPINES" in out.stdout and "60" in out.stdout

    st = {p.name: p for p in lifecycle.status(s).processes}
    assert st["serve"].running and st["serve"].health.startswith("ok, ")

    driver = psutil.Process(serving_process(s).info()["pid"])
    family = [driver, *driver.children(recursive=True)]
    out = runner.invoke(app, ["down"], env=env)
    assert out.exit_code == 0, out.output
    assert "serve" in out.stdout
    gone, alive = psutil.wait_procs(family, timeout=60)
    assert alive == [], f"left running after down: {[(p.pid, p.name()) for p in alive]}"
    assert serving_process(s).info() is None

    out = runner.invoke(app, ["forecast", "--zone", "TAMPINES"], env=env)
    assert out.exit_code != 0 and "ridecast serve" in out.output  # a clear message, not a traceback
    log = serving_process(s).log_file.read_text()
    assert "stopped" in log and "did not shut down cleanly" not in log, log[-3000:]

    # the same service without Ray: one uvicorn process, same model and API, same lifecycle
    out = runner.invoke(app, ["serve", "--plain"], env=env)
    assert out.exit_code == 0, out.output
    assert "plain uvicorn" in out.stdout
    out = runner.invoke(app, ["forecast", "--zone", "TAMPINES", "--horizon", "15"], env=env)
    assert out.exit_code == 0 and "TAMPINES" in out.stdout, out.output
    assert {p.name: p for p in lifecycle.status(s).processes}["serve"].health.endswith("plain (one process)")
    out = runner.invoke(app, ["down"], env=env)
    assert out.exit_code == 0 and "serve" in out.stdout, out.output
    assert serving_process(s).info() is None
