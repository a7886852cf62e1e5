"""Bring your own data: turn a CSV or Parquet file of "events per place per time" into v1 events.

Why it is built this way:

* **The platform is not about Singapore.** Orders per store, rentals per station and requests per zone
  are the same shape, so a file only has to name its time column and its place column. Zones are data:
  the zone list is derived from the file (weight = share of demand) and written in the same format as
  ``ridecast/data/sg_planning_areas.csv``; pointing ``RIDECAST_ZONES_FILE`` at it makes the whole
  pipeline (validation, features, forecasts) work on the new places.
* **Aggregates become events.** Many public data sets are counts per period (hourly rentals). A row with a
  count ``n`` becomes ``n`` ``requested`` events spread over the row's period - stratified: the k-th
  event lands in the k-th n-th of the period at a hashed offset - so sliding-window features count
  exactly what the row said, deterministically. The period is inferred as the most common gap between
  a zone's consecutive times unless ``period`` is given.
* **Deterministic ids.** ``event_id`` is a hash of (file name, row number, k), so ingesting a file twice
  yields the same ids and the pipeline's dedupe makes the second run a no-op.
* **Nothing is dropped silently.** A row that cannot be mapped (bad time, empty zone, bad or negative
  count, unknown event type) is written with its reason to a rejects JSONL and counted.
* **Bounded memory.** The file is read in record batches (pyarrow) and only the needed columns; mapped
  events are kept as compact numpy columns (~30 bytes per event), sorted by time (Kafka and Flink need
  event-time order) and turned into dicts lazily.
* **Times:** ISO 8601 strings, epoch seconds or milliseconds (told apart by magnitude), Parquet
  timestamps, or an explicit strftime ``time_format``. Naive times are UTC unless ``tz`` names a zone.
  Other string formats are rejected rather than guessed (is 03/01 March or January?).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ridecast.config import Settings, get_settings
from ridecast.events import EVENT_TYPES, make_event
from ridecast.sources.deliver import Delivery, Target, deliver

__all__ = [
    "DeadLetteredError",
    "IngestError",
    "IngestResult",
    "MappedFile",
    "RejectReason",
    "infer_period",
    "ingest",
    "map_file",
    "parse_period",
    "parse_times",
    "write_zone_list",
]

BATCH_ROWS = 65_536
EPOCH_S_MIN = 1e9  # numbers below this are not taken for epoch seconds (8-digit 20250101 is not 1970)
EPOCH_MS_MIN = 1e11  # at or above: milliseconds (1e11 s would be the year 5138)
ZONE_COLUMNS = ("zone", "name", "region", "kind", "weight", "lat", "lon")


class IngestError(ValueError):
    """The file as a whole cannot be ingested (missing column, unsupported type, period not inferable)."""


class DeadLetteredError(IngestError):
    """The feature job dead-lettered most of a backfilled file: its features would be missing or meaningless.

    Raised after the backfill (what passed is committed, the dead letters are in ``ops.dead_letters``); the
    message gives the reasons with their counts and what to change.
    """

    def __init__(self, message: str, *, reasons: dict[str, int], events: int, source: str):
        super().__init__(message)
        self.reasons, self.events, self.source = reasons, events, source


# What to change, per dead-letter reason (the reason's prefix before ":<field>").
_FIXES = {
    "event_time_too_old": "the file spans more than RIDECAST_FLINK__MAX_EVENT_AGE_DAYS (ages are measured from the "
                          "file's newest event): raise it above the span",
    "event_time_in_future": "times are ahead of the wall clock: check --tz and --time-format",
    "unknown_zone": "zones are not in the zone list: keep the derived zone list (--zones-out) for the backfill",
}


def _dead_letter_message(name: str, dead: dict[str, int], events: int, first_ms: int | None,
                         last_ms: int | None, source: str) -> str:
    n = sum(dead.values())
    lines = [f"{name}: the feature job dead-lettered {n:,} of {events:,} events ({n / max(events, 1):.0%}), so "
             f"the features of this file are missing; `ridecast train` would fail or learn from a remnant."]
    lines += [f"  {reason}: {count:,}" for reason, count in dead.items()]
    if first_ms is not None and last_ms is not None:
        lines.append(f"  the events span {(last_ms - first_ms) / 86_400_000:,.1f} days")
    fixes = {_FIXES[r.split(":")[0]] for r in dead if r.split(":")[0] in _FIXES}
    lines += [f"fix: {f}" for f in sorted(fixes)] or [
        f"fix: see SELECT reason, payload FROM ops.dead_letters WHERE source = '{source}'"]
    lines.append("then ingest a corrected file (the same content is recorded as backfilled and is skipped)")
    return "\n".join(lines)


class RejectReason:
    """Why a row was not mapped (stable strings, found in the rejects JSONL)."""

    BAD_TIME = "bad_time"
    EMPTY_ZONE = "empty_zone"
    BAD_COUNT = "bad_count"
    NEGATIVE_COUNT = "negative_count"
    NON_INTEGER_COUNT = "non_integer_count"
    UNKNOWN_TYPE = "unknown_event_type"


# ----------------------------------------------------------------------------------------------- times
_AWARE = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$")


def _tzinfo(tz: str | None):
    if tz is None or tz.upper() == "UTC":
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)


def _to_ms(dt) -> tuple[np.ndarray, np.ndarray]:
    """datetime64 Series (UTC-aware or UTC-naive) -> (epoch ms, ok)."""
    ok = ~dt.isna().to_numpy()
    ms = np.zeros(len(dt), dtype=np.int64)
    if ok.any():
        good = dt[ok]
        if getattr(good.dt, "tz", None) is not None:
            good = good.dt.tz_convert("UTC").dt.tz_localize(None)
        ms[ok] = good.dt.as_unit("ms").astype("int64").to_numpy()
    return ms, ok


def _localize(naive, tz: str | None):
    """Naive wall times -> UTC-aware, in ``tz`` (None = UTC); DST gaps/overlaps become NaT (rejected)."""
    zone = _tzinfo(tz)
    if zone is None:
        return naive.dt.tz_localize("UTC")
    return naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")


def _epoch(num: np.ndarray, unit: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Numbers -> (epoch ms, ok); unit None means decide per value by magnitude."""
    num = np.asarray(num, dtype=float)
    finite = np.isfinite(num)
    mag = np.abs(np.where(finite, num, 0.0))
    if unit == "epoch_ms":
        ms, ok = num, finite
    elif unit == "epoch_s":
        ms, ok = num * 1000.0, finite
    else:
        is_ms = mag >= EPOCH_MS_MIN
        ms = np.where(is_ms, num, num * 1000.0)
        ok = finite & (is_ms | (mag >= EPOCH_S_MIN))
    ok &= np.abs(np.where(ok, ms, 0.0)) < 2**62
    return np.where(ok, np.round(np.where(ok, ms, 0.0)), 0).astype(np.int64), ok


def parse_times(
    values: Sequence[Any] | np.ndarray | Any, *, time_format: str | None = None, tz: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of times into ``(epoch_ms int64, ok bool)``.

    ``values`` may be a pyarrow array, numpy array or sequence of strings/numbers/None.
    ``time_format``: None (auto: epoch s/ms by magnitude, else ISO 8601), ``"epoch_s"``, ``"epoch_ms"``,
    ``"iso"``, or a strftime pattern. Naive times are in ``tz`` (an IANA name; default UTC).
    """
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        typ = values.type
        if pa.types.is_timestamp(typ):
            ser = pd.Series(values.to_pandas())
            if typ.tz is None:
                ser = _localize(ser, tz)
            return _to_ms(ser)
        if pa.types.is_date(typ):
            ser = pd.Series(pd.to_datetime(values.cast(pa.timestamp("ms")).to_pandas()))
            return _to_ms(_localize(ser, tz))
        if pa.types.is_integer(typ) or pa.types.is_floating(typ):
            num = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return _epoch(num, time_format if time_format in ("epoch_s", "epoch_ms") else None)
        values = values.cast(pa.string()).to_pylist()
    ser = pd.Series(list(values) if not isinstance(values, np.ndarray) else values, dtype="object")
    n = len(ser)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return ms, ok
    text = ser.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v).strip())
    text = text.where(text != "", None)
    present = text.notna().to_numpy()
    if time_format in ("epoch_s", "epoch_ms"):
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        return _epoch(num, time_format)
    todo = present.copy()
    if time_format is None:  # numbers first
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        is_num = present & np.isfinite(num)
        e_ms, e_ok = _epoch(np.where(is_num, num, np.nan), None)
        ms[is_num], ok[is_num] = e_ms[is_num], e_ok[is_num]
        todo &= ~is_num
    if not todo.any():
        return ms, ok
    fmt = "ISO8601" if time_format in (None, "iso") else time_format
    sub = text[todo].astype(str)
    if fmt != "ISO8601":
        aware = np.full(len(sub), "%z" in fmt or "%Z" in fmt)
    else:
        aware = sub.str.contains(_AWARE).to_numpy()
    idx = np.flatnonzero(todo)
    if aware.any():
        dt = pd.to_datetime(sub[aware], format=fmt, errors="coerce", utc=True)
        m, o = _to_ms(pd.Series(dt))
        ms[idx[aware]], ok[idx[aware]] = m, o
    if (~aware).any():
        dt = pd.Series(pd.to_datetime(sub[~aware], format=fmt, errors="coerce"))
        if getattr(dt.dt, "tz", None) is None:
            dt = _localize(dt, tz)
        m, o = _to_ms(dt)
        ms[idx[~aware]], ok[idx[~aware]] = m, o
    return ms, ok


def parse_period(text: str | timedelta) -> timedelta:
    """``"1h"``, ``"15min"``, ``"30s"``, ``"1d"`` (anything pandas reads as a Timedelta) -> timedelta > 0."""
    if isinstance(text, timedelta):
        td = text
    else:
        import pandas as pd

        td = pd.Timedelta(text).to_pytimedelta()
    if td <= timedelta(0):
        raise ValueError(f"period must be positive: {text!r}")
    return td


def infer_period(times_ms: np.ndarray, zone_idx: np.ndarray) -> timedelta | None:
    """The most common positive gap between consecutive distinct times of the same zone (None if none)."""
    if times_ms.size < 2:
        return None
    order = np.lexsort((times_ms, zone_idx))
    t, z = times_ms[order], zone_idx[order]
    gaps = np.diff(t)[(np.diff(z) == 0) & (np.diff(t) > 0)]
    if gaps.size == 0:
        return None
    values, counts = np.unique(gaps, return_counts=True)
    return timedelta(milliseconds=int(values[np.argmax(counts)]))


# ----------------------------------------------------------------------------------------------- reading
def _batches(path: Path, columns: list[str], batch_rows: int) -> Iterator[Any]:
    import pyarrow as pa

    suffix = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise IngestError(f"{path.name}: no column(s) {missing}; columns are {pf.schema_arrow.names}")
        yield from pf.iter_batches(batch_size=batch_rows, columns=columns)
        return
    if not (suffix.endswith(".csv") or suffix.endswith(".csv.gz") or path.suffix.lower() in (".tsv", ".txt")):
        raise IngestError(f"{path.name}: unsupported file type (CSV or Parquet)")
    from pyarrow import csv as pacsv

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=4 << 20),
            parse_options=pacsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ","),
            # every column as text: types are decided here, row by row, so a bad value rejects a row
            # instead of failing the whole block
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, column_types={c: pa.string() for c in columns},
                strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise IngestError(f"{path.name}: {exc}") from exc
    with reader:
        for batch in reader:
            for off in range(0, batch.num_rows, batch_rows):
                yield batch.slice(off, batch_rows)


def _zone_strings(col) -> list[str | None]:
    import pyarrow as pa

    if pa.types.is_floating(col.type):  # 7.0 -> "7": ids stored as floats
        out = []
        for v in col.to_pylist():
            if v is None or v != v:
                out.append(None)
            else:
                out.append(str(int(v)) if float(v).is_integer() else str(v))
        return out
    return [None if v is None else str(v).strip() for v in col.cast(pa.string()).to_pylist()]


def _counts(col) -> tuple[np.ndarray, list[str | None]]:
    """Counts and a reason per row (None = fine)."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        num = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        num = pd.to_numeric(pd.Series(col.cast(pa.string()).to_pylist(), dtype="object"), errors="coerce")
        num = num.to_numpy(dtype=float)
    reasons: list[str | None] = [None] * len(num)
    for i in np.flatnonzero(~np.isfinite(num)):
        reasons[i] = RejectReason.BAD_COUNT
    for i in np.flatnonzero(np.isfinite(num) & (num < 0)):
        reasons[i] = RejectReason.NEGATIVE_COUNT
    for i in np.flatnonzero(np.isfinite(num) & (num >= 0) & (num != np.round(num))):
        reasons[i] = RejectReason.NON_INTEGER_COUNT
    good = np.isfinite(num) & (num >= 0)
    return np.where(good, np.round(np.where(good, num, 0)), 0).astype(np.int64), reasons


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-mixed deterministic hash of uint64s."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


# ----------------------------------------------------------------------------------------------- mapping
@dataclass
class MappedFile:
    """A file's rows mapped to events, held as time-sorted numpy columns."""

    source_name: str
    zones: list[str]  # zone index -> code
    zone_events: np.ndarray  # events per zone
    t: np.ndarray  # event_time_ms, sorted
    zone: np.ndarray  # zone index
    etype: np.ndarray  # index into EVENT_TYPES
    row: np.ndarray  # source row number (0-based, header excluded)
    k: np.ndarray  # number of the event within its row
    rows: int
    rejected: int
    reasons: dict[str, int]
    period: timedelta | None

    @property
    def events(self) -> int:
        return int(self.t.size)

    def event_id(self, row: int, k: int) -> str:
        return hashlib.blake2b(f"{self.source_name}\x00{row}\x00{k}".encode(), digest_size=16).hexdigest()

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """v1 event dicts in event-time order."""
        name = self.source_name.encode()
        zones, types = self.zones, EVENT_TYPES
        blake = hashlib.blake2b
        for t, z, e, r, k in zip(self.t.tolist(), self.zone.tolist(), self.etype.tolist(), self.row.tolist(),
                                 self.k.tolist()):
            eid = blake(b"%s\x00%d\x00%d" % (name, r, k), digest_size=16).hexdigest()
            yield make_event(eid, t, types[e], zones[z])

    def zone_shares(self) -> list[tuple[str, float]]:
        """(zone, weight) with weight = share of events; by weight, then zone."""
        total = int(self.zone_events.sum())
        n = len(self.zones)
        w = self.zone_events / total if total else np.full(n, 1.0 / max(n, 1))
        return sorted(((z, float(w[i])) for i, z in enumerate(self.zones)), key=lambda x: (-x[1], x[0]))


def map_file(
    path: str | Path,
    *,
    time_col: str,
    zone_col: str,
    value_col: str | None = None,
    type_col: str | None = None,
    time_format: str | None = None,
    tz: str | None = None,
    period: str | timedelta | None = None,
    rejects_path: str | Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> MappedFile:
    """Read ``path`` (CSV or Parquet) in batches and map its rows to events; rejects go to ``rejects_path``.

    Raises IngestError for problems with the file as a whole (missing column, period not inferable).
    """
    import pyarrow as pa

    p = Path(path)
    try:  # arguments first, before reading a large file
        _tzinfo(tz)
        fixed_period = parse_period(period) if period is not None else None
    except (ValueError, KeyError) as exc:
        raise IngestError(f"bad tz or period: {exc}") from exc
    cols = list(dict.fromkeys(c for c in (time_col, zone_col, value_col, type_col) if c))
    zone_index: dict[str, int] = {}
    t_parts, z_parts, c_parts, e_parts, r_parts = [], [], [], [], []
    reasons: Counter[str] = Counter()
    rows = 0
    rej_fh = None
    rp = Path(rejects_path) if rejects_path else None
    if rp is not None:
        rp.parent.mkdir(parents=True, exist_ok=True)
        rp.unlink(missing_ok=True)
    try:
        for batch in _batches(p, cols, batch_rows):
            n = batch.num_rows
            row_no = np.arange(rows, rows + n, dtype=np.int64)
            rows += n
            bad: list[str | None] = [None] * n
            ms, ok = parse_times(batch.column(time_col), time_format=time_format, tz=tz)
            for i in np.flatnonzero(~ok):
                bad[i] = RejectReason.BAD_TIME
            zs = _zone_strings(batch.column(zone_col))
            for i, z in enumerate(zs):
                if bad[i] is None and not z:
                    bad[i] = RejectReason.EMPTY_ZONE
            if value_col:
                counts, why = _counts(batch.column(value_col))
                for i, r in enumerate(why):
                    if bad[i] is None and r:
                        bad[i] = r
            else:
                counts = np.ones(n, dtype=np.int64)
            etype = np.zeros(n, dtype=np.int8)
            if type_col:
                col = batch.column(type_col).cast(pa.string()).to_pylist()
                for i, v in enumerate(col):
                    v = (v or "").strip().lower()
                    if v in EVENT_TYPES:
                        etype[i] = EVENT_TYPES.index(v)
                    elif bad[i] is None:
                        bad[i] = RejectReason.UNKNOWN_TYPE
            good = np.array([b is None for b in bad], dtype=bool)
            if not good.all():
                if rej_fh is None and rp is not None:
                    rej_fh = rp.open("w", encoding="utf-8")
                raw = {c: batch.column(c).to_pylist() for c in cols}
                for i in np.flatnonzero(~good):
                    reasons[bad[i]] += 1
                    if rej_fh is not None:
                        record = {c: (None if raw[c][i] is None else str(raw[c][i])) for c in cols}
                        rej_fh.write(json.dumps({"row": int(row_no[i]), "reason": bad[i], "record": record}) + "\n")
            gi = np.flatnonzero(good)
            t_parts.append(ms[gi])
            z_parts.append(np.array([zone_index.setdefault(zs[i], len(zone_index)) for i in gi], dtype=np.int32))
            c_parts.append(counts[gi])
            e_parts.append(etype[gi])
            r_parts.append(row_no[gi])
    finally:
        if rej_fh is not None:
            rej_fh.close()

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

    t, z, c = cat(t_parts, np.int64), cat(z_parts, np.int32), cat(c_parts, np.int64)
    e, r = cat(e_parts, np.int8), cat(r_parts, np.int64)
    per: timedelta | None = None
    if value_col:
        per = fixed_period or infer_period(t, z)
        if per is None and (c > 1).any():
            raise IngestError(f"{p.name}: cannot infer the period of a row (one time per zone): pass --period")
        per = per or timedelta(0)
    # expand counts: the k-th of n events lands in [k/n, (k+1)/n) of the period, at a hashed offset
    ev_row = np.repeat(np.arange(t.size), c)
    starts = np.cumsum(c) - c
    k = np.arange(ev_row.size, dtype=np.int64) - np.repeat(starts, c)
    per_ms = int(per.total_seconds() * 1000) if per else 0
    if per_ms:
        salt = np.uint64(int.from_bytes(hashlib.blake2b(p.name.encode(), digest_size=8).digest(), "little"))
        with np.errstate(over="ignore"):
            h = _mix64(_mix64(r[ev_row].astype(np.uint64) ^ salt) + k.astype(np.uint64))
        u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        n = c[ev_row].astype(np.float64)
        offset = np.minimum(np.floor((k + u) / n * per_ms).astype(np.int64), per_ms - 1)
    else:
        offset = np.zeros(ev_row.size, dtype=np.int64)
    ev_t = t[ev_row] + offset
    order = np.lexsort((k, r[ev_row], ev_t))
    zone_events = np.bincount(z[ev_row], minlength=len(zone_index)).astype(np.int64)
    return MappedFile(
        source_name=p.name,
        zones=list(zone_index),
        zone_events=zone_events,
        t=ev_t[order],
        zone=z[ev_row][order],
        etype=e[ev_row][order],
        row=r[ev_row][order],
        k=k[order],
        rows=rows,
        rejected=sum(reasons.values()),
        reasons=dict(reasons),
        period=per if value_col else None,
    )


def write_zone_list(shares: Sequence[tuple[str, float]], path: str | Path) -> Path:
    """Write a zone list in the format of ``ridecast/data/sg_planning_areas.csv`` (name = code)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(ZONE_COLUMNS)
        for zone, weight in shares:
            w.writerow([zone, zone, "", "", f"{weight:.6g}", "", ""])
    return p


# ----------------------------------------------------------------------------------------------- ingest
@dataclass
class IngestResult:
    source: Path
    rows: int
    events: int
    rejected: int
    reasons: dict[str, int]
    rejects_path: Path | None
    zones: int
    zones_path: Path
    period: timedelta | None
    first_event_ms: int | None
    last_event_ms: int | None
    to: Target
    delivery: Delivery | None = None  # where the events went (ridecast.sources.deliver)
    dead_lettered: dict[str, int] = field(default_factory=dict)  # backfill: what the job rejected, per reason
    extra: dict[str, Any] = field(default_factory=dict)


def ingest(
    path: str | Path,
    *,
    time_col: str,
    zone_col: str,
    value_col: str | None = None,
    type_col: str | None = None,
    time_format: str | None = None,
    tz: str | None = None,
    period: str | timedelta | None = None,
    zones_out: str | Path | None = None,
    to: Target | str = Target.kafka,
    settings: Settings | None = None,
    speedup: float | None = None,
    progress: bool = True,
    max_dead_letter_share: float = 0.5,
) -> IngestResult:
    """Map a file to events, write its zone list, and deliver the events (Kafka, a file, or a backfill).

    A file or backfill writes ``<state_dir>/backfill/<stem>.jsonl`` (a backfill with settings whose
    ``zones_file`` is the derived zone list). Rejects go next to the output (``<stem>.rejects.jsonl`` in
    ``backfill/`` or, for Kafka, in ``<state_dir>/ingest/``).

    A backfill then reads back what the job dead-lettered (``IngestResult.dead_lettered``) and raises
    :class:`DeadLetteredError` when more than ``max_dead_letter_share`` of the events landed there.
    """
    to = Target(to)
    s = settings or get_settings()
    src = Path(path)
    stem = src.name.split(".")[0] or "data"
    out_dir = s.state_dir / ("ingest" if to is Target.kafka else "backfill")
    rejects = out_dir / f"{stem}.rejects.jsonl"
    mapped = map_file(src, time_col=time_col, zone_col=zone_col, value_col=value_col, type_col=type_col,
                      time_format=time_format, tz=tz, period=period, rejects_path=rejects)
    if not mapped.zones:
        raise IngestError(f"{src.name}: no row could be mapped ({mapped.rejected} rejected, see {rejects})")
    zones_path = write_zone_list(mapped.zone_shares(), zones_out or s.state_dir / "zones" / f"{stem}.csv")
    result = IngestResult(
        source=src, rows=mapped.rows, events=mapped.events, rejected=mapped.rejected, reasons=mapped.reasons,
        rejects_path=rejects if mapped.rejected else None, zones=len(mapped.zones), zones_path=zones_path,
        period=mapped.period, first_event_ms=int(mapped.t[0]) if mapped.events else None,
        last_event_ms=int(mapped.t[-1]) if mapped.events else None, to=to,
    )
    file_settings = s.model_copy(update={"zones_file": zones_path})
    result.delivery = deliver(mapped.iter_events(), to, file_settings, path=out_dir / f"{stem}.jsonl",
                              speedup=speedup, heartbeat_zone=mapped.zone_shares()[0][0], total=mapped.events,
                              progress=progress)
    if result.delivery.backfill is not None:
        from ridecast.stack.pipeline import backfill_dead_letters

        done = result.delivery.backfill
        result.dead_lettered = backfill_dead_letters(done, file_settings)
        if sum(result.dead_lettered.values()) > max_dead_letter_share * result.events:
            raise DeadLetteredError(
                _dead_letter_message(src.name, result.dead_lettered, result.events, result.first_event_ms,
                                     result.last_event_ms, done.source),
                reasons=result.dead_lettered, events=result.events, source=done.source)
    return result
