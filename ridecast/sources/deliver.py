"""The one way events leave a source: to the events topic, to a JSON-lines file, or through a backfill.

``ridecast simulate``, ``ridecast ingest`` and the demo all end here, so Kafka pacing, the atomic file write and
the batch hand-off to :func:`ridecast.stack.pipeline.backfill` exist once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ridecast.config import Settings, get_settings

if TYPE_CHECKING:
    from ridecast.sources.producer import ProduceStats
    from ridecast.stack.pipeline import BackfillResult

__all__ = ["Delivery", "Target", "deliver", "write_jsonl"]


class Target(str, Enum):
    kafka = "kafka"  # the events topic, optionally paced by event time (the live path)
    file = "file"  # JSON lines, nothing else
    backfill = "backfill"  # JSON lines, then the feature job in batch over them into Iceberg (history)


@dataclass(frozen=True)
class Delivery:
    target: Target
    path: Path | None = None  # file, backfill: the JSON lines written
    written: int | None = None  # file, backfill: events in that file
    produced: ProduceStats | None = None  # kafka
    backfill: BackfillResult | None = None  # backfill


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write events as JSON lines (atomically: readers never see a half-written file); returns the count."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    n = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    try:
        with tmp.open("w", encoding="utf-8", buffering=1 << 20) as fh:
            for event in events:
                fh.write(dumps(event))
                fh.write("\n")
                n += 1
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def deliver(events: Iterable[dict[str, Any]], target: Target | str, settings: Settings | None = None, *,
            path: str | Path | None = None, speedup: float | None = None, heartbeat_zone: str | None = None,
            close_at: datetime | None = None, total: int | None = None, progress: bool = True) -> Delivery:
    """Send v1 events (in event-time order) to ``target``; ``path`` is required for a file or a backfill.

    ``speedup``, ``heartbeat_zone``, ``close_at`` and ``total`` apply to Kafka (see
    :func:`ridecast.sources.producer.produce`).
    A backfill of a file already backfilled is skipped by the pipeline, so re-delivering is safe.
    """
    target = Target(target)
    s = settings or get_settings()
    if target is Target.kafka:
        from ridecast.sources.producer import produce

        stats = produce(events, s, speedup=speedup, heartbeat_zone=heartbeat_zone, close_at=close_at, total=total,
                        progress=progress)
        return Delivery(target, produced=stats)
    if path is None:
        raise ValueError(f"delivering to {target.value} needs a path")
    written = write_jsonl(events, path)
    if target is Target.file:
        return Delivery(target, Path(path), written)
    from ridecast.stack.pipeline import backfill

    return Delivery(target, Path(path), written, backfill=backfill(path, settings=s, progress=progress))
