"""Filling an online store: the Iceberg bootstrap (history) and the feature job's online topic (freshness).

The topic's sink is at-least-once, so a window can arrive twice (after a Flink restore, or overlapping the
bootstrap); the store keys rows by ``(zone, window_minutes, window_end)``, so applying a message twice is
harmless, and the feed commits its Kafka offsets only after the store took the rows: a feed killed at any point
re-reads, never skips. A message that is not a window row is counted and logged, not fatal: one bad record must
not stop every forecast from getting fresher.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import pandas as pd

from serve._errors import MalformedWindowError
from serve._rows import WindowRow, history_span_ms, parse_message, rows_from_frame

if TYPE_CHECKING:
    from ridecast.config import Settings
    from serve._stores import OnlineStore

__all__ = ["FeatureFeed", "FeedStats", "bootstrap_from_lake", "feed_until", "run_feed", "try_bootstrap"]

log = logging.getLogger(__name__)
_CHUNK = 20_000
# A broker check waits this long for an answer: well inside the image's probe age (k8s/images/app/healthcheck.py),
# so a feed whose broker is gone still rewrites its health file, saying so.
_CHECK_TIMEOUT_S = 5.0


def bootstrap_from_lake(
    store: "OnlineStore", settings: "Settings", until: datetime | pd.Timestamp | None = None
) -> int:
    """Load the history span of ``gold.zone_features`` (windows ending up to ``until``, default all) into the
    store; returns the windows read. The topic then carries what the lake has not committed yet."""
    import pyarrow.compute as pc
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

    from iceberg_catalog.catalog import load_table, open_catalog
    from serve._rows import COLUMNS

    table = load_table(open_catalog(settings), "gold.zone_features")
    cap = None if until is None else LessThanOrEqual("window_end", pd.Timestamp(until).isoformat())
    ends = table.scan(selected_fields=("window_end",), **({"row_filter": cap} if cap is not None else {}))
    ends = ends.to_arrow().column("window_end")
    if len(ends) == 0:
        return 0
    newest = pd.Timestamp(pc.max(ends).as_py())
    first = GreaterThanOrEqual(
        "window_end", (newest - pd.Timedelta(milliseconds=history_span_ms(settings))).isoformat()
    )
    gold = table.scan(
        row_filter=first if cap is None else And(first, cap),
        selected_fields=("zone", "window_minutes", "window_end", *COLUMNS),
    ).to_pandas()
    rows = rows_from_frame(gold.sort_values("window_end", kind="stable"))
    for i in range(0, len(rows), _CHUNK):
        store.upsert(rows[i : i + _CHUNK])
    return len(rows)


@dataclass
class FeedStats:
    messages: int = 0
    new: int = 0  # windows the store did not hold yet
    rejected: int = 0  # messages that are not window rows
    last_error: str | None = None
    lag: int | None = None  # messages on the topic not read yet, at the last broker check (None: none yet)

    @property
    def duplicates(self) -> int:
        return self.messages - self.rejected - self.new


StartAt = Literal["committed", "earliest", "latest", "rewind"]


class FeatureFeed:
    """Consumes ``kafka.features_topic`` into a store.

    ``start``: ``committed`` resumes the ``serving.consumer_group`` (one feed writing a shared Redis);
    ``rewind`` (``serving.feed_rewind_s`` before now, by the records' timestamps), ``earliest``, ``latest`` or an
    instant read without a group: an in-process store that bootstrapped itself from the lake, whose commits lag
    the topic, reads the recent topic again in every replica and lets the dedupe absorb the overlap.
    """

    def __init__(
        self,
        store: "OnlineStore",
        settings: "Settings",
        start: StartAt | datetime | pd.Timestamp = "committed",
        servers: str | None = None,
    ) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from ridecast.stack.broker import bootstrap_servers

        self.store, self.settings, self.stats = store, settings, FeedStats()
        self.topic = settings.kafka.features_topic
        self._group = settings.serving.consumer_group if start == "committed" else None
        self._consumer = KafkaConsumer(
            bootstrap_servers=servers or bootstrap_servers(settings),
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="ridecast-serving-feed",
        )
        if self._group:
            self._consumer.subscribe([self.topic])
            return
        parts = [TopicPartition(self.topic, p) for p in sorted(self._consumer.partitions_for_topic(self.topic) or [0])]
        self._consumer.assign(parts)
        if start == "earliest":
            self._consumer.seek_to_beginning(*parts)
        elif start == "latest":
            self._consumer.seek_to_end(*parts)
        else:
            at = (
                pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=settings.serving.feed_rewind_s)
                if start == "rewind"
                else pd.Timestamp(start)
            )
            ms = int(at.timestamp() * 1000)
            found = self._consumer.offsets_for_times({tp: ms for tp in parts})
            for tp in parts:
                if found.get(tp) is None:
                    self._consumer.seek_to_end(tp)
                else:
                    self._consumer.seek(tp, found[tp].offset)

    def poll(self, timeout_s: float = 1.0) -> int:
        """One poll: parse, store, then commit. Returns the messages handled."""
        batch = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        rows: list[WindowRow] = []
        n = 0
        for records in batch.values():
            for rec in records:
                n += 1
                try:
                    rows.append(parse_message(rec.value))
                except MalformedWindowError as exc:
                    self.stats.rejected += 1
                    self.stats.last_error = f"{rec.topic}/{rec.partition}@{rec.offset}: {exc}"
                    log.warning("features topic: skipped %s", self.stats.last_error)
        if rows:
            self.stats.new += self.store.upsert(rows)
        self.stats.messages += n
        if n and self._group:
            self._consumer.commit()
        return n

    def check_lag(self, timeout_s: float = _CHECK_TIMEOUT_S) -> int:
        """Ask the broker for the topic's end offsets: returns the messages not read yet (end offset minus this
        feed's position, summed over its partitions), and raises (``KafkaTimeoutError``) when no broker answers
        within ``timeout_s``. A poll cannot tell: kafka-python retries an unreachable broker inside it and
        returns no records, without an error. A group member still joining has no partitions yet: lag 0."""
        from kafka import TopicPartition

        timeout_ms = int(timeout_s * 1000)
        mine = self._consumer.assignment()
        parts = sorted(mine) or [TopicPartition(self.topic, 0)]  # any partition: the question is the answer
        ends = self._consumer.end_offsets(parts, timeout_ms=timeout_ms)
        lag = sum(max(0, end - (self._consumer.position(tp, timeout_ms=timeout_ms) or 0))
                  for tp, end in ends.items() if tp in mine)
        self.stats.lag = lag
        return lag

    def run(self, stop: threading.Event, timeout_s: float = 1.0) -> None:
        """Poll until ``stop`` is set (a Serve replica runs this in a thread)."""
        while not stop.is_set():
            self.poll(timeout_s)

    def close(self) -> None:
        self._consumer.close()


# --- keeping a store fed: one loop for a serving replica's thread and for the separate feed process -----------


def try_bootstrap(store: "OnlineStore", settings: "Settings") -> tuple[int | None, str | None]:
    """:func:`bootstrap_from_lake` that never raises: ``(windows read, None)``, or ``(None, why not)``. A lake that
    is not there yet must not stop a replica or the feed: the topic may still fill the store."""
    try:
        return bootstrap_from_lake(store, settings), None
    except Exception as exc:  # noqa: BLE001 - no lake yet, or the catalog unreachable: said, not fatal
        error = f"bootstrap from gold.zone_features failed: {type(exc).__name__}: {exc}"
        log.warning("%s", error)
        return None, error


def feed_until(
    stop: threading.Event,
    store: "OnlineStore",
    settings: "Settings",
    start: StartAt = "committed",
    on_poll: Callable[[str | None, int | None], None] | None = None,
    retry_s: float = 5.0,
) -> FeedStats:
    """Poll ``kafka.features_topic`` into the store until ``stop`` is set; returns the counts of the feeds it ran.

    Every ``serving.feed_check_s``, and first thing after a new consumer's first poll, the feed asks the broker
    for its lag (:meth:`FeatureFeed.check_lag`). A broker outage (no answer to that check), or any error of a
    poll, is retried after ``retry_s`` with a new consumer, never the end of the loop. ``on_poll(None, lag)``
    follows every poll since the last check answered (``lag`` as of that check), ``on_poll(reason, None)`` every
    failure: a replica keeps it as its readiness reason, the feed process in its health file. With ``committed``
    the offsets of ``serving.consumer_group`` are committed after each stored batch (:meth:`FeatureFeed.poll`)."""
    total, feed, next_check = FeedStats(), None, 0.0

    def close() -> None:
        nonlocal feed
        if feed is not None:
            for k in ("messages", "new", "rejected"):
                setattr(total, k, getattr(total, k) + getattr(feed.stats, k))
            total.last_error = feed.stats.last_error or total.last_error
            try:
                feed.close()
            except Exception:  # noqa: BLE001 - closing a consumer whose broker is gone
                log.debug("closing the feed failed", exc_info=True)
        feed = None

    try:
        while not stop.is_set():
            try:
                if feed is None:
                    feed, next_check = FeatureFeed(store, settings, start=start), 0.0
                feed.poll(1.0)
                if time.monotonic() >= next_check:
                    total.lag = feed.check_lag()
                    next_check = time.monotonic() + settings.serving.feed_check_s
            except Exception as exc:  # noqa: BLE001 - a replica keeps answering (stale-flagged) meanwhile
                error = f"feature feed: {type(exc).__name__}: {exc}"
                log.warning("%s; retrying", error)
                close()
                if on_poll is not None:
                    on_poll(error, None)
                stop.wait(retry_s)
                continue
            if on_poll is not None:
                on_poll(None, total.lag)
    finally:
        close()
    return total


def _write_health(path: Path, error: str | None, lag: int | None = None) -> None:
    """``ok <time> lag=<n>`` or ``error <time> <reason>``, replaced atomically: a probe never reads half a file."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"ok {now} lag={'?' if lag is None else lag}\n" if error is None else f"error {now} {error}\n")
    os.replace(tmp, path)


def run_feed(settings: "Settings", stop: threading.Event, store: "OnlineStore | None" = None) -> FeedStats:
    """The feed on its own (``python -m serve --feed``; the chart's feed Deployment): bootstrap the shared store
    from the lake, then :func:`feed_until` with committed offsets until ``stop``: the same code a replica runs in
    a thread when ``serving.run_feed`` is set.

    Liveness: after every poll, failed or not, it rewrites ``settings.feed_health_file`` (``ok`` and the lag, or
    ``error`` and the reason, with the time), so the file's age says the loop is alive and its first word whether
    the broker answered its last check and no poll failed since (k8s/images/app/healthcheck.py reads both)."""
    from serve._stores import get_store

    store = store if store is not None else get_store(settings)
    health = settings.feed_health_file
    health.parent.mkdir(parents=True, exist_ok=True)
    try:
        windows, error = try_bootstrap(store, settings)
        _write_health(health, error)
        if windows is not None:
            log.info("bootstrapped %d windows from gold.zone_features", windows)
        stats = feed_until(stop, store, settings, "committed", lambda e, lag: _write_health(health, e, lag))
    finally:
        store.close()
    log.info("feed stopped: %d messages, %d new windows, %d rejected", stats.messages, stats.new, stats.rejected)
    return stats
