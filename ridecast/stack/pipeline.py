"""Runs the feature pipeline: the PyFlink job (in the Flink environment) and the Iceberg committer.

Two ways in, one job: ``start_stream`` runs the job unbounded over the Kafka topic, ``backfill`` runs the
very same SQL bounded over a JSONL file (history, or a user's own data), so offline and online features can
never drift apart. Both hand their finalized files to :class:`iceberg_catalog.committer.Committer`.

Recovery: the streaming job restarts from the newest *complete* checkpoint (a ``chk-N`` with ``_metadata``,
searched over every job-id folder since a restored job gets a new id). Restoring an older checkpoint makes
Flink loop in RESTARTING, so nothing here ever picks one that is not the newest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from flink_jobs.sql import JobSpec
from iceberg_catalog.catalog import ensure_tables, open_catalog
from iceberg_catalog.committer import CommitStats, Committer, backfill_root, cleanup_committed, stream_root
from ridecast.config import Settings, get_settings, repo_root
from ridecast.events import EVENT_TIME_IN_TEXT, load_zones
from ridecast.stack.process import ManagedProcess

__all__ = [
    "BackfillResult",
    "backfill",
    "backfill_dead_letters",
    "cleanup_committed_staging",
    "committer_process",
    "feature_job_process",
    "job_spec",
    "latest_checkpoint",
    "start_committer",
    "start_stream",
    "stop_stream",
]

# from scripts/bootstrap.sh: the job's Java functions, compiled from flink_jobs/udf; the connectors and drivers
# (requirements/jvm/flink.pom.xml) are every jar of ``flink_jars_dir/flink``
UDF_JAR = "ridecast-udf.jar"


def job_jars(settings: Settings) -> list[Path]:
    """Every jar the job puts on ``pipeline.jars``: Flink's Kafka connector, Iceberg's Flink runtime, Hadoop
    client, JDBC drivers (from Maven Central) and our own functions."""
    return [*sorted((settings.flink_jars_dir / "flink").glob("*.jar")), settings.flink_jars_dir / UDF_JAR]


def feature_job_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("feature-job", s.run_dir, s.log_dir)


def committer_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("committer", s.run_dir, s.log_dir)


def job_spec(settings: Settings, mode: Literal["stream", "batch"], **overrides: object) -> JobSpec:
    """The job's whole configuration, derived from settings (the job reads nothing else)."""
    from ridecast.stack.broker import bootstrap_servers

    f, k = settings.flink, settings.kafka
    spec = JobSpec(
        mode=mode,
        staging_dir=str(stream_root(settings)),
        zones=[z.zone for z in load_zones(settings.zones_file)],
        window_minutes=list(f.window_minutes),
        slide_minutes=f.slide_minutes,
        watermark_delay_s=f.watermark_delay_s,
        max_future_skew_s=f.max_future_skew_s,
        max_event_age_days=f.max_event_age_days,
        max_payload_bytes=f.max_payload_bytes,
        rolling_interval_s=f.rolling_interval_s,
        idle_timeout_s=f.idle_timeout_s,
        checkpoint_dir=str(settings.checkpoint_dir),
        checkpoint_interval_s=f.checkpoint_interval_s,
        parallelism=f.parallelism,
        jars=[str(j) for j in job_jars(settings)],
    )
    if mode == "stream":
        spec.bootstrap_servers = bootstrap_servers(settings)
        spec.events_topic, spec.features_topic = k.events_topic, k.features_topic
        spec.dead_letter_topic, spec.consumer_group = k.dead_letter_topic, f.consumer_group
        spec.startup_mode = f.startup_mode
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint over all job ids (numbering continues across restores)."""
    best: tuple[int, float, Path] | None = None
    for meta in checkpoint_dir.glob("*/chk-*/_metadata"):
        chk = meta.parent
        try:
            n = int(chk.name.removeprefix("chk-"))
        except ValueError:
            continue
        key = (n, meta.stat().st_mtime, chk)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def _flink_env(settings: Settings) -> dict[str, str]:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PYTHONPATH": str(repo_root()),
        "FLINK_LOG_DIR": str(settings.log_dir / "flink"),
        "PYTHONUNBUFFERED": "1",
    }


def _check_flink_env(settings: Settings) -> None:
    jars = job_jars(settings)
    missing = [p for p in (settings.flink_python, *jars) if not p.exists()]
    if missing or len(jars) == 1:
        raise RuntimeError(f"Flink environment incomplete ({', '.join(map(str, missing))}): run scripts/bootstrap.sh")


def _write_spec(spec: JobSpec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(spec), indent=1))
    return path


def start_stream(settings: Settings | None = None) -> dict:
    """Start (or find running) the streaming feature job, restoring from its newest checkpoint."""
    s = settings or get_settings()
    _check_flink_env(s)
    proc = feature_job_process(s)
    if (rec := proc.info()) is not None:
        return rec
    ensure_tables(open_catalog(s))
    restore = latest_checkpoint(s.checkpoint_dir)
    spec = job_spec(s, "stream", restore_path=str(restore) if restore else "")
    spec_path = _write_spec(spec, s.run_dir / "feature-job.spec.json")
    return proc.start([str(s.flink_python), "-m", "flink_jobs.zone_features", str(spec_path)],
                      env=_flink_env(s), cwd=repo_root(), extra={"restored_from": str(restore or "")})


def start_committer(settings: Settings | None = None) -> dict:
    s = settings or get_settings()
    ensure_tables(open_catalog(s))
    env = {"RIDECAST_HOME": str(s.state_dir)}
    return committer_process(s).start([sys.executable, "-m", "iceberg_catalog.committer"], env=env,
                                      cwd=repo_root())


def stop_stream(settings: Settings | None = None) -> list[str]:
    s = settings or get_settings()
    stopped = []
    for proc in (feature_job_process(s), committer_process(s)):
        if proc.stop(timeout=20):
            stopped.append(proc.name)
    return stopped


@dataclass
class BackfillResult:
    backfill_id: str
    skipped: bool
    committed: dict[str, CommitStats]
    seconds: float
    source: str = ""  # bronze.source / ops.dead_letters.source of this backfill's rows: file:<name>@<id>
    now_ms: int | None = None  # the clock the job judged the file's event times by

    def __str__(self) -> str:
        if self.skipped:
            return f"already backfilled (id {self.backfill_id}): skipped"
        rows = ", ".join(f"{ident} {st.rows:,}" for ident, st in self.committed.items())
        return f"{rows or 'no rows'} committed in {self.seconds:.0f} s (id {self.backfill_id})"


def backfill(jsonl_path: Path | str, settings: Settings | None = None, *, now_ms: int | None = None,
             timeout_s: float = 3600, progress: bool = True) -> BackfillResult:
    """Run the feature job in batch over a JSONL event file and commit its output, exactly once per file.

    Idempotent: a file already backfilled (same content) is skipped; a run interrupted after Flink finished
    commits what is left; a run interrupted during Flink starts that part again from scratch.

    ``now_ms``: the clock of the job's future/too-old checks; by default the file's own newest event time
    (see ``_scan_file``), so history is judged against its own time range.
    """
    s = settings or get_settings()
    _check_flink_env(s)
    started = time.monotonic()
    path = Path(jsonl_path).resolve()
    scan = _scan_file(path, wall_ms=int(time.time() * 1000), max_future_skew_s=s.flink.max_future_skew_s)
    bid = scan.digest[:16]
    now_ms = scan.clock_ms if now_ms is None else now_ms
    root = backfill_root(s, bid)
    source = f"{path.name}@{bid}"
    if (root / "_COMMITTED").exists():
        return BackfillResult(bid, True, {}, time.monotonic() - started, "file:" + source, now_ms)
    ensure_tables(open_catalog(s))
    if not (root / "_FLINK_DONE").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        spec = job_spec(s, "batch", staging_dir=str(root), input_path=str(path), source_name=source,
                        now_ms=now_ms)
        spec_path = _write_spec(spec, root / "_spec.json")
        env = {**os.environ, **_flink_env(s)}
        log_path = s.log_dir / f"backfill-{bid}.log"
        with log_path.open("wb") as log, _spinner(progress, f"feature job (batch) over {path.name}") as tick:
            proc = subprocess.Popen(
                [str(s.flink_python), "-m", "flink_jobs.zone_features", str(spec_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo_root(), start_new_session=True,
            )
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                    break
                tick()
                time.sleep(0.5)
        if proc.returncode != 0 or "RIDECAST_JOB_FINISHED" not in log_path.read_text(errors="replace")[-4000:]:
            raise RuntimeError(f"backfill feature job failed (exit {proc.returncode}); see {log_path}")
        (root / "_FLINK_DONE").touch()
    committer = Committer(s, root, properties={"ridecast.backfill-id": bid})
    with _spinner(progress, "committing to Iceberg") as tick:
        tick()
        committed = committer.drain()
    (root / "_COMMITTED").touch()
    return BackfillResult(bid, False, committed, time.monotonic() - started, "file:" + source, now_ms)


@dataclass
class _FileScan:
    digest: str  # sha256 of the content: the backfill's identity
    clock_ms: int  # the job's clock for this file (see _scan_file)


# The first "event_time_ms" of each line, as events.event_time_in_text reads it (the pattern is ASCII, so bytes
# match as the decoded text does); over whole blocks, which is twice as fast as a search per line.
_FIRST_TIME_PER_LINE = re.compile(rb"(?m)^[^\n]*?" + EVENT_TIME_IN_TEXT.encode())


def _scan_file(path: Path, *, wall_ms: int, max_future_skew_s: int) -> _FileScan:
    """One pass over the file: its digest, and the clock its event times are judged by.

    A backfill is history: judged by today's clock, a 2010 event log is "too old" in full
    (``max_event_age_days``). Its clock is therefore the file's own newest event time (as the source reads it),
    so the age limit measures the span of the file; never later than the wall clock, and events further ahead
    of the wall clock than the allowed skew do not count, so one absurd future timestamp cannot make the rest
    of the file too old. The live stream keeps the wall clock.
    """
    digest = hashlib.sha256()
    limit = wall_ms + max_future_skew_s * 1000
    newest: float | None = None

    def scan(text: bytes) -> None:
        nonlocal newest
        for value in _FIRST_TIME_PER_LINE.findall(text):
            try:
                t = float(value)  # as the job does (EventTimeInText), then truncated to a long
            except ValueError:
                continue
            if math.isfinite(t) and t <= limit and (newest is None or t > newest):
                newest = t

    rest = b""
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            scan(block[:cut])
    scan(rest)
    return _FileScan(digest.hexdigest(), min(int(newest), wall_ms) if newest is not None else wall_ms)


def backfill_dead_letters(result: BackfillResult, settings: Settings | None = None) -> dict[str, int]:
    """What the job dead-lettered for one backfill, read back from ``ops.dead_letters``: ``{reason: count}``."""
    from pyiceberg.expressions import EqualTo

    table = open_catalog(settings or get_settings()).load_table("ops.dead_letters")
    reasons = table.scan(row_filter=EqualTo("source", result.source), selected_fields=("reason",)).to_arrow()
    counts: dict[str, int] = {}
    for reason in reasons.column("reason").to_pylist():
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


@contextmanager
def _spinner(enabled: bool, what: str) -> Iterator[Callable[[], None]]:
    """A Rich spinner with elapsed time: a batch Flink job gives no progress of its own until it ends."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda: bar.update(task)


def cleanup_committed_staging(settings: Settings | None = None, *, min_age_s: float = 3600.0) -> int:
    """Maintenance hook: delete staged files already in Iceberg; must run before snapshots expire."""
    return cleanup_committed(settings or get_settings(), min_age_s=min_age_s)
