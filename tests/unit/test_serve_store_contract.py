"""The online store's contract that needs no server: the topic's message format, the registry's typed errors."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from ridecast.config import Settings
from serve import (
    STORES,
    MalformedWindowError,
    StoreConfigError,
    StoreNotInstalledError,
    get_store,
    history_span_ms,
    parse_message,
    rows_from_frame,
)
from tests.lake_fixtures import gold_windows, online_message, synthetic_events


def test_a_job_message_parses_to_the_gold_row_it_came_from():
    gold = gold_windows(synthetic_events(["A", "B"], "2025-03-03", 1, seed=1))
    from_topic = [parse_message(online_message(r)) for _, r in gold.iterrows()]
    from_lake = rows_from_frame(gold)
    assert len(from_topic) == len(gold) > 100
    for a, b in zip(from_topic, from_lake):
        assert a.key == b.key and a.values == pytest.approx(b.values, nan_ok=True, rel=0, abs=0)
    r = from_topic[0]
    assert r.window_end - pd.Timedelta(minutes=r.window_minutes) == pd.Timestamp(gold.iloc[0]["window_start"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"zone": "A"}', "missing field"),
        (b'{"zone": "", "window_minutes": 15}', "missing field"),
    ],
)
def test_malformed_messages_say_what_is_wrong(raw, message):
    with pytest.raises(MalformedWindowError, match=message):
        parse_message(raw)


def _msg(**over) -> bytes:
    gold = gold_windows(synthetic_events(["A"], "2025-03-03", 1, seed=1))
    base = online_message(gold.iloc[0]).decode()
    import json

    d = json.loads(base) | over
    return json.dumps(d).encode()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"zone": ""}, "zone must be a non-empty string"),
        ({"window_minutes": 0}, "window_minutes must be a positive integer"),
        ({"window_minutes": True}, "window_minutes must be a positive integer"),
        ({"window_end": "yesterday"}, "not an ISO-8601 timestamp"),
        ({"window_end": "2025-03-03T00:05:00"}, "no time zone"),
        ({"window_end": 1740960300000}, "must be an ISO-8601 string"),
        ({"window_end": "2025-03-03T00:10:00Z"}, "is not 15 minutes long"),
        ({"requests": "7"}, "requests must be a number or null"),
    ],
)
def test_each_field_is_checked(over, message):
    with pytest.raises(MalformedWindowError, match=message):
        parse_message(_msg(**over))


def test_registry_errors_are_typed(tmp_path, monkeypatch):
    s = Settings(home=tmp_path)
    assert set(STORES) == {"memory", "redis"}
    with pytest.raises(StoreConfigError, match="unknown online store 'etcd'; choose memory, redis"):
        get_store(s, "etcd")
    with pytest.raises(StoreConfigError, match="RIDECAST_SERVING__REDIS_URL"):
        get_store(s, "redis")
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the package were not installed
    with pytest.raises(
        StoreNotInstalledError, match=r"needs the Python package 'redis'.*bootstrap.sh.*ridecast\[serve\]"
    ):
        get_store(s, "redis")
    assert get_store(s, "memory").name == "memory"


def test_the_history_span_covers_four_weeks_of_the_longest_horizon(tmp_path):
    s = Settings(home=tmp_path)
    s.training.horizons = [15, 60, 1440]
    assert history_span_ms(s) == (28 * 1440 + 1440 + 60) * 60_000
