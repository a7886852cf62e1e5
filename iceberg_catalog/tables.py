"""Every Iceberg table of ridecast, defined once: schema, partition spec, sort order, properties.

Layout follows the medallion convention: ``bronze`` keeps what arrived, as it arrived; ``silver`` the
validated events; ``gold`` the features and forecasts that queries and models read; ``ops`` what operators
audit (dead letters, model promotions). Partitions are by day of the time column every query filters on;
sort orders put one zone's rows together so per-zone scans prune row groups.

Adding a table: add a :class:`TableDef` to :data:`TABLES`; ``ensure_tables`` creates it on next start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    DoubleType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

__all__ = ["TABLES", "TableDef", "table_def"]

NAMESPACES = ("bronze", "silver", "gold", "ops")

# Parquet with zstd, and a small target file size: streaming commits are small anyway, maintenance compacts.
_COMMON_PROPS = {
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(128 * 1024 * 1024),
    "format-version": "2",
}


@dataclass(frozen=True)
class TableDef:
    namespace: str
    name: str
    schema: Schema
    partition_spec: PartitionSpec
    sort_order: SortOrder
    key: tuple[str, ...]  # the columns that identify a row: exactly-once is checked on these
    description: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"


def _f(fid: int, name: str, typ, required: bool = False, doc: str | None = None) -> NestedField:
    return NestedField(field_id=fid, name=name, field_type=typ, required=required, doc=doc)


def _day(source_id: int, field_id: int, name: str) -> PartitionSpec:
    return PartitionSpec(PartitionField(source_id=source_id, field_id=field_id, transform=DayTransform(), name=name))


def _sort(*source_ids: int) -> SortOrder:
    return SortOrder(*(SortField(source_id=s, transform=IdentityTransform()) for s in source_ids))


BRONZE_TRIP_EVENTS = TableDef(
    "bronze",
    "trip_events",
    Schema(
        _f(1, "payload", StringType(), doc="the message as received (UTF-8), cut at flink.max_payload_bytes"),
        _f(2, "source", StringType(), doc="kafka:<topic>/<partition> or file:<name>"),
        _f(3, "source_offset", LongType(), doc="Kafka offset, or line number in the file"),
        _f(4, "received_at", TimestamptzType(), doc="when the feature job read it"),
        _f(5, "event_id", StringType(), doc="parsed if the payload had one"),
    ),
    _day(4, 1000, "received_day"),
    _sort(2, 3),
    key=("source", "source_offset"),
    description="Raw trip events exactly as received, valid or not",
)

SILVER_TRIP_EVENTS = TableDef(
    "silver",
    "trip_events",
    Schema(
        _f(1, "event_id", StringType(), required=True),
        _f(2, "event_time", TimestamptzType(), required=True),
        _f(3, "event_type", StringType(), required=True, doc="requested | completed | cancelled"),
        _f(4, "pickup_zone", StringType(), required=True),
        _f(5, "dropoff_zone", StringType()),
        _f(6, "fare", DoubleType()),
        _f(7, "wait_seconds", DoubleType()),
        _f(8, "surge", DoubleType()),
        _f(9, "source", StringType()),
        _f(10, "source_offset", LongType()),
        _f(11, "received_at", TimestamptzType()),
        _f(12, "is_late", IntegerType(), doc="1 if its windows had closed when it arrived (also dead-lettered)"),
    ),
    _day(2, 1000, "event_day"),
    _sort(4, 2),
    key=("event_id",),
    description="Validated trip events (heartbeats removed)",
)

GOLD_ZONE_FEATURES = TableDef(
    "gold",
    "zone_features",
    Schema(
        _f(1, "zone", StringType(), required=True),
        _f(2, "window_minutes", IntegerType(), required=True),
        _f(3, "window_start", TimestamptzType(), required=True),
        _f(4, "window_end", TimestamptzType(), required=True, doc="features are known at this instant"),
        _f(5, "requests", LongType(), required=True),
        _f(6, "completions", LongType(), required=True),
        _f(7, "cancellations", LongType(), required=True),
        _f(8, "fare_sum", DoubleType()),
        _f(9, "fare_mean", DoubleType()),
        _f(10, "fare_max", DoubleType()),
        _f(11, "wait_mean", DoubleType()),
        _f(12, "wait_max", DoubleType()),
        _f(13, "surge_mean", DoubleType()),
        _f(14, "events", LongType(), required=True),
        _f(15, "computed_at", TimestamptzType()),
    ),
    _day(4, 1000, "window_day"),
    _sort(1, 2, 4),
    key=("zone", "window_minutes", "window_end"),
    description="Sliding-window demand features per zone (a window with no events has no row: zero demand)",
)

OPS_DEAD_LETTERS = TableDef(
    "ops",
    "dead_letters",
    Schema(
        _f(1, "reason", StringType(), required=True),
        _f(2, "payload", StringType(), doc="the offending message, cut at 4 KiB"),
        _f(3, "payload_bytes", LongType()),
        _f(4, "source", StringType()),
        _f(5, "source_offset", LongType()),
        _f(6, "received_at", TimestamptzType(), required=True),
        _f(7, "event_id", StringType()),
    ),
    _day(6, 1000, "received_day"),
    _sort(1, 6),
    key=("source", "source_offset", "reason"),
    description="Events the feature job could not use, with the reason",
)

GOLD_FORECASTS = TableDef(
    "gold",
    "forecasts",
    Schema(
        _f(1, "zone", StringType(), required=True),
        _f(2, "horizon_min", IntegerType(), required=True),
        _f(3, "feature_time", TimestamptzType(), required=True, doc="cut-off: only windows closed by then were used"),
        _f(4, "target_start", TimestamptzType(), required=True, doc="predicted window is [target_start, target_end)"),
        _f(5, "target_end", TimestamptzType(), required=True),
        _f(6, "predicted_requests", DoubleType(), required=True),
        _f(7, "model_name", StringType(), required=True, doc="MLflow registered model (one per horizon)"),
        _f(8, "model_version", IntegerType(), required=True, doc="the champion version that produced it"),
        _f(9, "created_at", TimestamptzType()),
    ),
    _day(4, 1000, "target_day"),
    _sort(1, 2, 4),
    key=("zone", "horizon_min", "feature_time"),
    description="Batch demand forecasts per zone and horizon from the champion models",
)

GOLD_FORECAST_ACCURACY = TableDef(
    "gold",
    "forecast_accuracy",
    Schema(
        _f(1, "zone", StringType(), required=True),
        _f(2, "horizon_min", IntegerType(), required=True),
        _f(3, "feature_time", TimestamptzType(), required=True),
        _f(4, "target_start", TimestamptzType(), required=True),
        _f(5, "target_end", TimestamptzType(), required=True),
        _f(6, "predicted_requests", DoubleType(), required=True),
        _f(7, "actual_requests", LongType(), required=True, doc="requests in [target_start, target_end) from silver"),
        _f(8, "error", DoubleType(), doc="predicted - actual"),
        _f(9, "abs_error", DoubleType()),
        _f(10, "model_name", StringType()),
        _f(11, "model_version", IntegerType()),
        _f(12, "evaluated_at", TimestamptzType()),
    ),
    _day(4, 1000, "target_day"),
    _sort(1, 2, 4),
    key=("zone", "horizon_min", "feature_time"),
    description="Forecasts joined with actual demand once their target window has closed",
)

OPS_MODEL_PROMOTIONS = TableDef(
    "ops",
    "model_promotions",
    Schema(
        _f(1, "decided_at", TimestamptzType(), required=True),
        _f(2, "model_name", StringType(), required=True),
        _f(3, "horizon_min", IntegerType()),
        _f(4, "version", IntegerType(), required=True, doc="the candidate version"),
        _f(5, "previous_champion_version", IntegerType(), doc="null when there was no champion"),
        _f(6, "decision", StringType(), required=True, doc="promoted | rejected"),
        _f(7, "alias", StringType(), doc="champion | challenger: the alias the candidate got"),
        _f(8, "reason", StringType()),
        _f(9, "wape", DoubleType(), doc="candidate's backtest WAPE"),
        _f(10, "champion_wape", DoubleType(), doc="previous champion on the same backtest"),
        _f(11, "best_baseline", StringType()),
        _f(12, "best_baseline_wape", DoubleType()),
        _f(13, "mae", DoubleType()),
        _f(14, "rmse", DoubleType()),
        _f(15, "mase", DoubleType()),
        _f(16, "actor", StringType(), doc="who ran the training"),
        _f(17, "run_id", StringType(), doc="MLflow run"),
        _f(18, "experiment", StringType()),
        _f(19, "backtest_start", TimestamptzType()),
        _f(20, "backtest_end", TimestamptzType()),
    ),
    _day(1, 1000, "decided_day"),
    _sort(2, 1),
    key=("model_name", "version"),
    description="Every promotion-gate decision: which version replaced which, by whom, when, with metrics",
)

TABLES: dict[str, TableDef] = {
    t.identifier: t
    for t in (
        BRONZE_TRIP_EVENTS,
        SILVER_TRIP_EVENTS,
        GOLD_ZONE_FEATURES,
        OPS_DEAD_LETTERS,
        GOLD_FORECASTS,
        GOLD_FORECAST_ACCURACY,
        OPS_MODEL_PROMOTIONS,
    )
}


def table_def(identifier: str) -> TableDef:
    try:
        return TABLES[identifier]
    except KeyError:
        raise KeyError(f"unknown table {identifier!r}; known: {', '.join(sorted(TABLES))}") from None
