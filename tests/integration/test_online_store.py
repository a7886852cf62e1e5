"""The online feature store, one suite over every backend (Feast-style): in-process memory and a real Redis.

Feeds use the session's Apache Kafka broker with messages in the feature job's online format
(``tests.lake_fixtures.online_message``) instead of running Flink; the bootstrap reads the real Iceberg tables.
The consistency test is the point of the package: for cut-offs on a known lake, the vector the online store
serves equals the training row ``training.dataset`` builds at the same cut-off, feature by feature.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaProducer

from ridecast.config import Settings
from ridecast.stack.broker import ensure_topics
from serve import (
    COLUMNS,
    FeatureFeed,
    MalformedWindowError,
    NoFeaturesError,
    OnlineFeatures,
    OnlineStoreError,
    StoreUnavailableError,
    UnknownZoneError,
    WindowRow,
    bootstrap_from_lake,
    get_store,
    is_stale,
)
from tests.lake_fixtures import gold_windows, online_message, synthetic_events, write_lake
from training.dataset import build_frame, cutoff_grid, load_lake
from training.features import SlideMismatchError

ZONES = ["A", "B", "C"]
MIN = 60_000
T0 = pd.Timestamp("2025-03-31 12:00", tz="UTC")  # a Monday
T0_MS = int(T0.timestamp() * 1000)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _settings(tmp_path, backend: str, request: pytest.FixtureRequest, **kafka: str) -> Settings:
    s = Settings(home=tmp_path / "home")
    s.serving.backend = backend
    s.serving.key_prefix = f"t{uuid.uuid4().hex[:10]}"  # one Redis, isolated per test
    if backend == "redis":
        s.serving.redis_url = request.getfixturevalue("redis_url")
    for k, v in kafka.items():
        setattr(s.kafka, k, v)
    return s


@pytest.fixture
def store_settings(tmp_path, backend, request) -> Settings:
    return _settings(tmp_path, backend, request)


@pytest.fixture
def store(store_settings):
    st = get_store(store_settings)
    assert st.name == store_settings.serving.backend
    yield st
    st.clear()
    st.close()


def row(zone: str, w: int, end_ms: int, requests: float, **cols: float) -> WindowRow:
    values = {c: 0.0 for c in COLUMNS} | {"requests": requests, "events": requests} | cols
    return WindowRow(zone, w, end_ms, tuple(float(values[c]) for c in COLUMNS))


# --- upsert, dedupe, latest -----------------------------------------------------------------------------------


def test_upsert_stores_each_window_once(store):
    rows = [row("A", 15, T0_MS + k * 5 * MIN, k) for k in range(6)] + [row("A", 60, T0_MS, 40)]
    assert store.upsert(rows) == 7
    # the topic is at-least-once: the same windows again are not new, and nothing is counted twice
    assert store.upsert(rows[:3] + rows[-1:]) == 0
    # the key is (zone, window size, end): another zone or size at the same end is another window
    assert store.upsert([row("B", 15, T0_MS, 9), row("A", 60, T0_MS + 5 * MIN, 41)]) == 2
    got = store.read(["A", "B"], {15: np.array([T0_MS, T0_MS + 25 * MIN, T0_MS + 30 * MIN]), 60: np.array([T0_MS])})
    req = COLUMNS.index("requests")
    assert got[15][0, :, req].tolist()[:2] == [0.0, 5.0] and np.isnan(got[15][0, 2, req])  # no such window
    assert got[15][1, 0, req] == 9.0 and np.isnan(got[15][1, 1, req])
    assert got[60][:, 0, req].tolist()[0] == 40.0
    assert store.bounds() == (T0_MS - 60 * MIN, T0_MS + 25 * MIN)
    assert store.zones() == ["A", "B"]


def test_the_revision_moves_with_every_upsert_and_never_comes_back(store):
    """A serving replica caches vectors and predictions against ``revision()``: a write it missed, or a cleared
    store refilled to the same count, must never look like the revision it cached."""
    r0 = store.revision()
    store.upsert([row("A", 15, T0_MS, 1)])
    r1 = store.revision()
    store.upsert([row("A", 15, T0_MS, 1)])  # the same window again (at-least-once): still a write
    r2 = store.revision()
    assert r0 != r1 != r2 and len({r0, r1, r2}) == 3
    store.clear()
    store.upsert([row("A", 15, T0_MS, 1)])
    assert store.revision() not in (r0, r1, r2)


def test_nan_means_survive_the_store(store):
    store.upsert([row("A", 15, T0_MS, 0, fare_mean=float("nan"), wait_mean=12.5)])
    got = store.read(["A"], {15: np.array([T0_MS])})[15][0, 0]
    assert np.isnan(got[COLUMNS.index("fare_mean")]) and got[COLUMNS.index("wait_mean")] == 12.5


def test_latest_window_per_zone_and_size_even_out_of_order(store):
    store.upsert([row("A", 15, T0_MS + 10 * MIN, 3), row("A", 15, T0_MS + 20 * MIN, 7), row("A", 60, T0_MS, 30)])
    store.upsert([row("A", 15, T0_MS + 15 * MIN, 5), row("B", 15, T0_MS + 5 * MIN, 1)])  # late arrival, older
    a, b = store.latest("A"), store.latest("B")
    assert {w: (r.window_end_ms, r.value("requests")) for w, r in a.items()} == {
        15: (T0_MS + 20 * MIN, 7.0),
        60: (T0_MS, 30.0),
    }
    assert list(b) == [15] and b[15].window_end == T0 + pd.Timedelta(minutes=5)
    assert store.latest("nowhere") == {}


def test_rows_the_store_would_file_wrongly_are_refused(store):
    with pytest.raises(SlideMismatchError, match="off the 5-minute slide grid"):
        store.upsert([row("A", 15, T0_MS + MIN, 1)])
    with pytest.raises(MalformedWindowError, match="a 30-minute window"):
        store.upsert([row("A", 30, T0_MS, 1)])
    assert store.bounds() == (None, None)


# --- lookups: history, staleness, errors -----------------------------------------------------------------------


def test_history_lookups_read_yesterday_and_four_weeks_back(store_settings):
    """Same slot yesterday and 1-4 weeks back come from windows the store keeps for the history span.

    One window size here, so the hand-made rows are the whole truth (with 60-minute windows too, the week's
    count would be tiled from those)."""
    store_settings.flink.window_minutes = [15]
    store = get_store(store_settings)
    day, week = 1440 * MIN, 7 * 1440 * MIN
    h = 15
    rows = [row(z, 15, T0_MS, 1) for z in ZONES]  # the cut-off's own window
    rows += [row("A", 15, T0_MS - day + h * MIN, 20)]  # [t-1d, t-1d+h)
    rows += [row("A", 15, T0_MS - n * week + h * MIN, 10 * n) for n in (1, 2, 3, 4)]  # [t-nW, t-nW+h)
    rows += [row("A", 15, T0_MS - 4 * week - 30 * MIN, 0)]  # the history starts before the 4-weekly interval
    rows += [row("B", 15, T0_MS - 4 * week - 30 * MIN, 0)]
    store.upsert(rows)
    online = OnlineFeatures(store, store_settings)
    got = online.lookup(h, ["A", "B"])
    assert got.feature_time == T0 and got.zones == ["A", "B"]
    a = dict(zip(got.matrix.columns, got.vector("A")))
    assert a["lag_1d"] == 20 and [a[f"lag_{d}d"] for d in (7, 14, 21, 28)] == [10, 20, 30, 40]
    assert got.seasonal_naive("A") == 10  # the stale fallback: same window last week
    assert a["weekly_mean"] == 25 and a["recent_h"] == 1 and a["w15_requests_lag0"] == 1
    assert a["zone_mean_7d"] == (1 + 20 + 10) / (7 * 96)  # the week's requests, per 15-minute slot
    b = dict(zip(got.matrix.columns, got.vector("B")))
    assert b["lag_28d"] == 0 and b["lag_1d"] == 0  # covered, no window: zero demand, not missing
    # a store whose history does not reach four weeks back says "missing", not zero
    store.clear()
    store.upsert([r for r in rows if r.window_end_ms > T0_MS - 2 * week + h * MIN])
    a = dict(zip(online.columns, online.lookup(h, ["A"]).vector("A")))
    assert a["lag_7d"] == 10 and np.isnan(a["lag_14d"]) and np.isnan(a["lag_28d"]) and a["weekly_mean"] == 10
    assert np.isnan(a["recent_weekly_mean"])  # [t-7d-h, t-7d) starts before the history does
    # the model's column order, whatever it is
    cols = ["lag_7d", "hour_of_day"]
    assert online.lookup(h, ["A"]).vector("A", cols).tolist() == [10.0, 12 + 8.0]  # 12:00 UTC = 20:00 SGT
    store.clear()
    store.close()


def test_every_lookup_says_how_old_its_features_are(store, store_settings):
    store_settings.serving.max_feature_age_s = 600
    store.upsert([row("A", 15, T0_MS, 1), row("A", 60, T0_MS, 4)])
    online = OnlineFeatures(store, store_settings)
    fresh = online.lookup(60, now=T0 + pd.Timedelta(seconds=599))
    assert fresh.feature_time == T0 and fresh.age == pd.Timedelta(seconds=599) and not fresh.stale
    old = online.lookup(60, now=T0 + pd.Timedelta(seconds=601))
    assert old.stale and old.age == pd.Timedelta(seconds=601)
    # the feed catches up: the newest closed window moves the feature time
    store.upsert([row("A", 15, T0_MS + 5 * MIN, 2)])
    assert not online.lookup(60, now=T0 + pd.Timedelta(seconds=601)).stale
    assert is_stale(T0, T0 + timedelta(minutes=11), timedelta(minutes=10))
    assert not is_stale(T0, T0 + timedelta(minutes=10), timedelta(minutes=10))


def test_lookup_errors_are_typed(store, store_settings):
    online = OnlineFeatures(store, store_settings)
    with pytest.raises(NoFeaturesError, match="holds no window yet"):
        online.lookup(60)
    store.upsert([row("A", 15, T0_MS, 1)])
    with pytest.raises(UnknownZoneError, match="unknown zone.*NOWHERE"):
        online.lookup(60, ["A", "NOWHERE"])
    store.upsert([row("NOWHERE", 15, T0_MS - 5 * MIN, 3)])  # a zone's first window: found without a restart
    assert online.lookup(60, ["NOWHERE"]).zones == ["NOWHERE"]
    with pytest.raises(NoFeaturesError, match="not in the store yet"):
        online.lookup(60, at=T0 + pd.Timedelta(minutes=5))
    assert online.lookup(60, at=T0 - pd.Timedelta(minutes=5)).feature_time == T0 - pd.Timedelta(minutes=5)
    store_settings.training.horizons = [15, 20]
    with pytest.raises(OnlineStoreError, match="20 minutes is not a whole number of any window"):
        OnlineFeatures(store, store_settings)


def test_an_unreachable_redis_is_a_typed_error(tmp_path, request):
    from ridecast.stack.process import free_port

    s = _settings(tmp_path, "memory", request)
    s.serving.backend, s.serving.redis_url = "redis", f"redis://127.0.0.1:{free_port()}/0"
    st = get_store(s)
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        st.upsert([row("A", 15, T0_MS, 1)])
    with pytest.raises(StoreUnavailableError):
        st.bounds()


# --- the feed: the real Kafka topic in the job's format --------------------------------------------------------


def _feed_settings(tmp_path, backend, request) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    s = _settings(
        tmp_path,
        backend,
        request,
        bootstrap_servers=request.getfixturevalue("broker"),
        events_topic=f"trip-events-{suffix}",
        features_topic=f"zone-features-{suffix}",
        dead_letter_topic=f"trip-events-dlq-{suffix}",
    )
    s.serving.consumer_group = f"serving-{suffix}"
    ensure_topics(s)
    return s


def _produce(s: Settings, messages: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, acks="all", linger_ms=5)
    for m in messages:
        producer.send(s.kafka.features_topic, m)
    producer.flush()
    producer.close()


def _drain(feed: FeatureFeed, expected: int, timeout_s: float = 60.0) -> None:
    """Poll until ``expected`` messages were handled (a count, never end offsets); bounded in time."""
    deadline = time.monotonic() + timeout_s
    while feed.stats.messages < expected:
        assert time.monotonic() < deadline, f"feed handled {feed.stats.messages} of {expected} messages"
        feed.poll(0.5)


def test_feed_from_the_online_topic_dedupes_and_skips_bad_messages(tmp_path, backend, request):
    s = _feed_settings(tmp_path, backend, request)
    silver = synthetic_events(ZONES, "2025-03-03", 1, seed=4)
    gold = gold_windows(silver, s.flink.window_minutes, s.flink.slide_minutes)
    messages = [online_message(r) for _, r in gold.iterrows()]
    resent = messages[100:130]  # an at-least-once sink's repeats after a restore
    bad = [
        b"not json",
        b'{"zone": "A"}',
        online_message(gold.iloc[0]).replace(b'"window_minutes": 15', b'"window_minutes": "x"'),
    ]
    _produce(s, messages[:200] + bad + resent + messages[200:])
    store = get_store(s)
    feed = FeatureFeed(store, s, start="committed")
    try:
        _drain(feed, len(messages) + len(bad) + len(resent))
        assert (feed.stats.new, feed.stats.duplicates, feed.stats.rejected) == (len(gold), len(resent), len(bad))
        assert "window_minutes must be a positive integer" in (feed.stats.last_error or "")
        want = gold.set_index(["zone", "window_minutes", "window_end"])
        for zone in ZONES:
            latest = store.latest(zone)
            for w in (15, 60):
                mine = want.xs((zone, w), level=(0, 1))
                end = mine.index.max()
                assert latest[w].window_end == end and latest[w].value("requests") == mine.loc[end, "requests"]
        assert store.bounds()[1] == int(pd.Timestamp(gold["window_end"].max()).timestamp() * 1000)
    finally:
        feed.close()
    # the group's offsets were committed after the store took the rows: a restarted feed reads only what is new
    _produce(s, messages[:5])
    again = FeatureFeed(store, s, start="committed")
    try:
        _drain(again, 5)
        again.poll(1.0)  # nothing else arrives: the earlier messages are not read again
        assert (again.stats.messages, again.stats.new) == (5, 0)
    finally:
        again.close()
    # without a group: from an instant by the records' timestamps (a replica after its lake bootstrap)
    total = len(messages) + len(bad) + len(resent) + 5
    rewind = FeatureFeed(store, s, start="rewind")  # serving.feed_rewind_s back: everything produced above
    future = FeatureFeed(store, s, start=pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1))
    try:
        _drain(rewind, total)
        assert (rewind.stats.new, rewind.stats.rejected) == (0, len(bad))
        future.poll(1.0)
        assert future.stats.messages == 0
    finally:
        rewind.close()
        future.close()
        store.clear()
        store.close()


def _healthcheck():
    """The app image's probe script (k8s/images/app/healthcheck.py), which the chart's feed Deployment runs."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "k8s" / "images" / "app" / "healthcheck.py"
    spec = importlib.util.spec_from_file_location("ridecast_image_healthcheck", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert proc.poll() is None, f"the feed exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    return got


def test_the_feed_process_bootstraps_redis_then_follows_the_topic_until_sigterm(tmp_path, request, monkeypatch):
    """`python -m serve --feed` (the chart's feed Deployment), as a process with only RIDECAST_* settings: Redis gets
    the lake's windows, then a window sent to the topic; its health file passes the image's probes; SIGTERM ends it
    cleanly with the group's offsets committed up to what it stored."""
    from kafka import KafkaConsumer, TopicPartition

    s = _feed_settings(tmp_path, "redis", request)
    _silver, gold = write_lake(s, synthetic_events(ZONES, "2025-03-03", 1, seed=5))
    lake_end = pd.Timestamp(gold["window_end"].max())
    later = gold_windows(synthetic_events(ZONES, "2025-03-04", 1, seed=6), s.flink.window_minutes,
                         s.flink.slide_minutes)
    later = later[later["window_minutes"] == 15]
    fresh = later[later["window_end"] == later["window_end"].max()]  # the newest 15-minute window of every zone
    assert set(fresh["zone"]) == set(ZONES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDECAST_")} | {
        "RIDECAST_CONFIG": str(tmp_path / "no-ridecast.toml"),
        "RIDECAST_HOME": str(s.home),
        "RIDECAST_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        "RIDECAST_KAFKA__FEATURES_TOPIC": s.kafka.features_topic,
        "RIDECAST_SERVING__BACKEND": "redis",
        "RIDECAST_SERVING__REDIS_URL": s.serving.redis_url,
        "RIDECAST_SERVING__KEY_PREFIX": s.serving.key_prefix,
        "RIDECAST_SERVING__CONSUMER_GROUP": s.serving.consumer_group,
    }
    log = tmp_path / "feed.log"
    store = get_store(s)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serve", "--feed"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    try:
        _wait_for("lake bootstrap", lambda: store.bounds()[1] == int(lake_end.timestamp() * 1000), proc, log)
        # the image's probes, pointed at this process (its /proc/<pid>/cmdline) and its settings
        for key in ("RIDECAST_HOME", "RIDECAST_SERVING__FEED_HEALTH_FILE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("RIDECAST_HOME", str(s.home))
        probe = _healthcheck()
        health = Path(probe.feed_health_file())
        assert health == s.feed_health_file  # the script and the settings find the same file
        _wait_for("a health file", health.is_file, proc, log)
        _wait_for("a poll without error", lambda: health.read_text().startswith("ok "), proc, log)
        cmdline = f"/proc/{proc.pid}/cmdline"
        assert probe.main(cmdline, []) == 0 and probe.main(cmdline, ["--ready"]) == 0
        assert probe.check_feed(ready=False, now=time.time() + 2 * probe.FEED_MAX_AGE_S) == 1  # a stuck loop
        _produce(s, [online_message(r) for _, r in fresh.iterrows()])
        fresh_end = pd.Timestamp(fresh["window_end"].iloc[0])

        def arrived() -> bool:
            return all(store.latest(z).get(15) is not None and store.latest(z)[15].window_end == fresh_end
                       for z in ZONES)

        _wait_for("the topic's window in Redis", arrived, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = log.read_text()
    assert "received SIGTERM" in said and f"feed stopped: {len(fresh)} messages, {len(fresh)} new windows" in said, said
    # committed after storing: the group resumes after the window it stored, not before it
    consumer = KafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers, group_id=s.serving.consumer_group,
                             enable_auto_commit=False)  # reads the group's offsets; never joins it
    try:
        topic = s.kafka.features_topic
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(parts)
        assert {tp: consumer.committed(tp) or 0 for tp in parts} == ends
    finally:
        consumer.close()
        store.clear()
        store.close()


def test_the_feed_reports_its_lag_and_survives_a_broker_outage(tmp_path, monkeypatch):
    """The feed process's loop (``run_feed``, in a thread) on a broker of its own, reached by an explicit bootstrap
    address as on Kubernetes: its health file says ``ok`` with the lag the broker reports; with the broker stopped
    it says ``error`` (a poll alone returns nothing, without an error) while the loop stays alive, so the image's
    readiness probe fails and its liveness probe passes; with the broker back the same loop says ``ok`` again and
    stores a window published after the outage."""
    import threading

    from ridecast.stack.broker import start_broker, stop_broker
    from serve import run_feed

    stack = Settings(home=tmp_path / "broker-home")  # the broker's own state; restarted on the same port
    servers = start_broker(stack)
    s = _settings(tmp_path, "memory", None, bootstrap_servers=servers)
    s.serving.feed_check_s = 1.0
    ensure_topics(s)
    gold = gold_windows(synthetic_events(ZONES, "2025-03-03", 1, seed=7), s.flink.window_minutes,
                        s.flink.slide_minutes)
    gold = gold[gold["window_minutes"] == 15]
    ends = sorted(gold["window_end"].unique())
    messages = [online_message(r) for _, r in gold[gold["window_end"] == ends[0]].iterrows()]
    _produce(s, messages)
    # the lag: what the broker holds past the feed's position
    probe_feed = FeatureFeed(get_store(s), s, start="earliest")
    try:
        assert probe_feed.check_lag() == len(messages)
        _drain(probe_feed, len(messages))
        assert probe_feed.check_lag() == 0
    finally:
        probe_feed.close()
    monkeypatch.setenv("RIDECAST_SERVING__FEED_HEALTH_FILE", str(s.feed_health_file))
    probe = _healthcheck()
    health, store, stop = s.feed_health_file, get_store(s), threading.Event()
    feeder = threading.Thread(target=run_feed, args=(s, stop, store), daemon=True)
    feeder.start()

    def until(what: str, check, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert feeder.is_alive(), f"the feed loop ended before {what}"
            assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f} s; health: {health.read_text()!r}"
            time.sleep(0.2)

    def says(word: str) -> bool:
        return health.is_file() and health.read_text().startswith(word)

    try:
        until("an ok with the lag", lambda: says("ok ") and health.read_text().rstrip().endswith(" lag=0"))
        until("the first windows", lambda: store.bounds()[1] == int(pd.Timestamp(ends[0]).timestamp() * 1000))
        assert probe.check_feed(ready=True) == 0
        stop_broker(stack)
        until("an error once the broker is gone", lambda: says("error "))
        assert probe.check_feed(ready=True) == 1 and probe.check_feed(ready=False) == 0  # unready, alive
        assert start_broker(stack) == servers
        until("an ok with the broker back", lambda: says("ok "))
        _produce(s, [online_message(r) for _, r in gold[gold["window_end"] == ends[1]].iterrows()])
        until("a window published after the outage",
              lambda: store.bounds()[1] == int(pd.Timestamp(ends[1]).timestamp() * 1000))
        assert probe.check_feed(ready=True) == 0
    finally:
        stop.set()
        feeder.join(timeout=60)
        stop_broker(stack)
    assert not feeder.is_alive()


# --- consistency: online vector == training row --------------------------------------------------------------


def test_online_vectors_equal_training_rows_feature_by_feature(tmp_path, backend, request):
    """Bootstrap from the lake up to T0, then a live topic (with repeats): at each cut-off the store has seen exactly
    the windows closed by then, and the served vector equals the training set's row at that cut-off."""
    s = _feed_settings(tmp_path, backend, request)
    s.training.min_history_days = 7
    silver, gold = write_lake(s, synthetic_events(ZONES, "2025-03-03", 10, seed=7))
    lake = load_lake(s)
    grid = cutoff_grid(lake, s, 60)
    cutoffs = [grid[-40], grid[-23], grid[-9], grid[-1]]
    boot_until = cutoffs[0] - pd.Timedelta(hours=3)
    ends = pd.to_datetime(gold["window_end"], utc=True)
    store = get_store(s)
    assert bootstrap_from_lake(store, s, until=boot_until) == int((ends <= boot_until).sum())
    live = gold[(ends > boot_until) & (ends <= cutoffs[-1])].sort_values("window_end", kind="stable")
    live_ends = pd.to_datetime(live["window_end"], utc=True)
    feed = FeatureFeed(store, s, start="earliest")
    online = OnlineFeatures(store, s)
    sent = 0
    try:
        for t in cutoffs:
            batch = live[
                (live_ends > (cutoffs[cutoffs.index(t) - 1] if t != cutoffs[0] else boot_until)) & (live_ends <= t)
            ]
            msgs = [online_message(r) for _, r in batch.iterrows()]
            msgs += msgs[: len(msgs) // 10]  # repeats
            _produce(s, msgs)
            sent += len(msgs)
            _drain(feed, sent)
            for h in s.training.horizons:
                served = online.lookup(h, ZONES)
                assert served.feature_time == t
                train = build_frame(lake, pd.DatetimeIndex([t]), h, s, with_label=False).set_index("zone")
                for zone in ZONES:
                    want = train.loc[zone, served.matrix.columns].to_numpy(np.float64)
                    got = served.vector(zone)
                    diff = [
                        c
                        for c, a, b in zip(served.matrix.columns, got, want)
                        if not (a == b or (np.isnan(a) and np.isnan(b)))
                    ]
                    pairs = [(c, got[served.matrix.columns.index(c)], train.loc[zone, c]) for c in diff]
                    assert not diff, f"{zone} h={h} at {t}: {pairs}"
                    assert not np.isnan(got[served.matrix.columns.index("lag_7d")])  # history really used
        assert feed.stats.duplicates > 0 and feed.stats.rejected == 0
    finally:
        feed.close()
        store.clear()
        store.close()
