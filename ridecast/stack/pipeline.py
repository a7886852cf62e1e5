"""Runs the feature pipeline: the PyFlink job (in the Flink environment), which writes Iceberg itself.

Two ways in, one job: ``start_stream`` runs the job unbounded over the Kafka topic, ``backfill`` runs the
very same SQL bounded over a JSONL file (history, or a user's own data), so offline and online features can
never drift apart. Both write the lake through Iceberg's own Flink sink into the catalog pyiceberg created the
tables in (``ensure_tables`` runs first): one committer per table inside the job, exactly once per checkpoint.

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
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from flink_jobs.sql import ICEBERG_SINKS, JobSpec
from iceberg_catalog.catalog import ensure_tables, flink_catalog_options, open_catalog
from ridecast.config import Settings, get_settings, repo_root
from ridecast.events import EVENT_TIME_IN_TEXT, load_zones
from ridecast.stack.process import ManagedProcess

__all__ = [
    "BackfillError",
    "BackfillResult",
    "FlinkEnvironmentError",
    "JOB_TABLES",
    "backfill",
    "backfill_dead_letters",
    "backfill_snapshots",
    "feature_job_process",
    "job_spec",
    "latest_checkpoint",
    "start_stream",
    "stop_stream",
]

# from scripts/bootstrap.sh: the job's Java functions, compiled from flink_jobs/udf; the connectors and drivers
# (requirements/jvm/flink.pom.xml) are every jar of ``flink_jars_dir/flink``
UDF_JAR = "ridecast-udf.jar"
# Jars that must be on the JVM's own classpath, not on ``pipeline.jars``: Flink always loads ``org.apache.hadoop``
# parent-first (so Hadoop in the user jars is never seen), and java.sql.DriverManager only hands a connection to
# a caller whose class loader can see the driver's class, which a driver loaded by the user class loader is not
# for Iceberg's JDBC catalog. Flink's own answer is HADOOP_CLASSPATH / lib/; PyFlink's launcher adds
# HADOOP_CLASSPATH to the JVM's classpath.
SYSTEM_JARS = ("hadoop-client-api-*.jar", "hadoop-client-runtime-*.jar", "sqlite-jdbc-*.jar", "postgresql-*.jar")
# the Iceberg tables the job writes
JOB_TABLES = tuple(ICEBERG_SINKS)


class FlinkEnvironmentError(RuntimeError):
    """The Flink environment (.venv-flink, the connector jars, our functions' jar) is not installed."""


def system_jars(settings: Settings) -> list[Path]:
    """The jars of :data:`SYSTEM_JARS`, for the JVM's classpath (HADOOP_CLASSPATH)."""
    folder = settings.flink_jars_dir / "flink"
    return sorted(p for pattern in SYSTEM_JARS for p in folder.glob(pattern))


def job_jars(settings: Settings) -> list[Path]:
    """Every jar the job puts on ``pipeline.jars``: Flink's Kafka connector, Iceberg's Flink runtime (from
    Maven Central) and our own functions; Hadoop and the JDBC drivers go to :func:`system_jars`."""
    system = set(system_jars(settings))
    return [*sorted(p for p in (settings.flink_jars_dir / "flink").glob("*.jar") if p not in system),
            settings.flink_jars_dir / UDF_JAR]


def feature_job_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("feature-job", s.run_dir, s.log_dir)


def job_spec(settings: Settings, mode: Literal["stream", "batch"], **overrides: object) -> JobSpec:
    """The job's whole configuration, derived from settings (the job reads nothing else)."""
    from ridecast.stack.broker import bootstrap_servers

    f, k = settings.flink, settings.kafka
    spec = JobSpec(
        mode=mode,
        catalog_name=settings.catalog.name,
        catalog_options=flink_catalog_options(settings),
        zones=[z.zone for z in load_zones(settings.zones_file)],
        window_minutes=list(f.window_minutes),
        slide_minutes=f.slide_minutes,
        watermark_delay_s=f.watermark_delay_s,
        max_future_skew_s=f.max_future_skew_s,
        max_event_age_days=f.max_event_age_days,
        max_payload_bytes=f.max_payload_bytes,
        idle_timeout_s=f.idle_timeout_s,
        checkpoint_dir=str(settings.checkpoint_dir),
        checkpoint_interval_s=f.checkpoint_interval_s,
        parallelism=f.parallelism,
        restart_strategy=f.restart_strategy,
        restart_attempts=f.restart_attempts,
        restart_delay_s=f.restart_delay_s,
        restart_max_delay_s=f.restart_max_delay_s,
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
        "HADOOP_CLASSPATH": os.pathsep.join(str(p) for p in system_jars(settings)),
    }


def _check_flink_env(settings: Settings) -> None:
    jars = job_jars(settings)
    missing = [p for p in (settings.flink_python, *jars) if not p.exists()]
    if missing or len(jars) == 1 or len(system_jars(settings)) < len(SYSTEM_JARS):
        raise FlinkEnvironmentError(f"Flink environment incomplete ({', '.join(map(str, missing)) or 'jars'}): "
                                    "run scripts/bootstrap.sh")


def _write_spec(spec: JobSpec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # it carries the catalog's credentials (catalog_options)
    path.chmod(0o600)
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


def stop_stream(settings: Settings | None = None) -> list[str]:
    s = settings or get_settings()
    proc = feature_job_process(s)
    return [proc.name] if proc.stop(timeout=20) else []


class BackfillError(RuntimeError):
    """The batch feature job failed or timed out; what it committed stays, a rerun completes it."""


@dataclass
class BackfillResult:
    backfill_id: str
    skipped: bool
    committed: dict[str, int]  # table -> rows this file's job appended (over every run of it)
    seconds: float
    source: str = ""  # bronze.source / ops.dead_letters.source of this backfill's rows: file:<name>@<id>
    now_ms: int | None = None  # the clock the job judged the file's event times by

    def __str__(self) -> str:
        if self.skipped:
            return f"already backfilled (id {self.backfill_id}): skipped"
        rows = ", ".join(f"{ident} {n:,}" for ident, n in self.committed.items())
        return f"{rows or 'no rows'} committed in {self.seconds:.0f} s (id {self.backfill_id})"


def backfill_snapshots(settings: Settings, job_id: str) -> dict[str, list]:
    """Per table of the job, the snapshots Iceberg's Flink committer made for Flink job ``job_id``."""
    catalog = open_catalog(settings)
    out: dict[str, list] = {}
    for ident in JOB_TABLES:
        table = catalog.load_table(ident)
        out[ident] = [snap for snap in table.metadata.snapshots if snap.summary is not None
                      and snap.summary.additional_properties.get("flink.job-id") == job_id]
    return out


def backfill(jsonl_path: Path | str, settings: Settings | None = None, *, now_ms: int | None = None,
             timeout_s: float = 3600, progress: bool = True) -> BackfillResult:
    """Run the feature job in batch over a JSONL event file, writing Iceberg through the sink, once per file.

    The file's content fixes the Flink job id (its SHA-256), and Iceberg's committer writes that id into every
    snapshot it makes. A rerun of the same file therefore carries the same id, and the committer (Sink V2) skips
    every table whose commit for this job is already in the table: a run killed half-way through its commits
    finishes the missing tables on rerun, and none twice. A file is skipped without starting Flink when every
    table holds its commit, or its last run finished (``<state>/backfills/<id>.done``: a table the file gave no
    rows gets no commit, and snapshot expiry removes old ones).

    ``now_ms``: the clock of the job's future/too-old checks; by default the file's own newest event time
    (see ``_scan_file``), so history is judged against its own time range.
    """
    s = settings or get_settings()
    _check_flink_env(s)
    started = time.monotonic()
    path = Path(jsonl_path).resolve()
    scan = _scan_file(path, wall_ms=int(time.time() * 1000), max_future_skew_s=s.flink.max_future_skew_s)
    job_id = scan.digest[:32]  # a Flink JobID is 16 bytes
    bid = job_id[:16]
    now_ms = scan.clock_ms if now_ms is None else now_ms
    source = f"{path.name}@{bid}"
    ensure_tables(open_catalog(s))
    done = s.state_dir / "backfills" / f"{bid}.done"
    if done.exists() or all(backfill_snapshots(s, job_id).values()):
        return BackfillResult(bid, True, {}, time.monotonic() - started, "file:" + source, now_ms)
    spec = job_spec(s, "batch", input_path=str(path), source_name=source, job_id=job_id, now_ms=now_ms)
    spec_path = _write_spec(spec, s.run_dir / f"backfill-{bid}.spec.json")
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
        raise BackfillError(f"backfill feature job failed (exit {proc.returncode}); see {log_path}")
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(job_id + "\n")
    committed = {ident: sum(int(snap.summary.additional_properties.get("added-records", 0)) for snap in snaps)
                 for ident, snaps in backfill_snapshots(s, job_id).items()}
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
