"""The embedded Apache Kafka broker: one KRaft node (controller + broker), bound to 127.0.0.1 only.

On Kubernetes ``kafka.bootstrap_servers`` points at a real cluster (Strimzi, MSK) and none of this runs.
Locally the broker is the Apache Kafka server itself (``kafka_2.13`` from Maven Central, fetched by
``scripts/bootstrap.sh`` into ``.cache/kafka/lib``), started the way ``kafka-server-start.sh`` starts it.

Its log dirs live in the state dir and survive restarts, so a ``kill -9`` of the broker loses nothing that
was acknowledged with ``acks=all``: the records are in the page cache and the log segments, and the
restarted broker recovers them. Ports are chosen once and kept in the state dir, so every client that
knows the bootstrap address (the Flink job, a producer) reconnects to the same place after a restart.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ridecast.config import Settings, get_settings, repo_root
from ridecast.stack.process import ManagedProcess, free_port, kept_identity

__all__ = [
    "BrokerLayout",
    "BrokerNotInstalledError",
    "BrokerNotReadyError",
    "bootstrap_servers",
    "broker_health",
    "broker_process",
    "ensure_topics",
    "start_broker",
    "stop_broker",
    "wait_ready",
]

# Records a transactional producer may keep open: Flink's exactly-once Kafka sink defaults to 1 h, Kafka's
# own maximum to 15 min; the broker allows the longer one so either sink mode works unchanged.
TRANSACTION_MAX_TIMEOUT_MS = 3_600_000


class BrokerNotInstalledError(RuntimeError):
    """The Kafka jars are not in .cache/kafka/lib: run scripts/bootstrap.sh (`make install`)."""


class BrokerNotReadyError(RuntimeError):
    """The broker did not answer a metadata request in time; its log says why."""


def kafka_lib_dir() -> Path:
    return repo_root() / ".cache" / "kafka" / "lib"


@dataclass(frozen=True)
class BrokerLayout:
    """Where one embedded broker keeps its state: config, KRaft metadata, log segments, chosen ports."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def identity_file(self) -> Path:
        return self.root / "identity.json"

    def identity(self, settings: Settings) -> dict:
        """Cluster id and ports, chosen on first start and kept: restarts come back at the same address."""
        return kept_identity(self.identity_file, lambda: {
            "cluster_id": _random_cluster_id(), "port": settings.kafka.broker_port or free_port(),
            "controller_port": free_port()})


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what StorageTool prints)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def render_server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """server.properties of a single-node KRaft cluster: 127.0.0.1 only, every internal topic with RF 1."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",  # topics are created explicitly (ensure_topics)
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
        "log.retention.hours": "168",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.server.name = org.apache.kafka.server
logger.server.level = INFO
"""


def broker_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("broker", s.run_dir, s.log_dir)


def broker_layout(settings: Settings | None = None) -> BrokerLayout:
    s = settings or get_settings()
    return BrokerLayout(s.state_dir / "kafka")


def bootstrap_servers(settings: Settings | None = None) -> str:
    """Where Kafka is: the configured servers, else the embedded broker's address (running or not)."""
    s = settings or get_settings()
    if s.kafka.bootstrap_servers:
        return s.kafka.bootstrap_servers
    rec = broker_process(s).info()
    if rec is None:
        raise BrokerNotReadyError("no Kafka: set RIDECAST_KAFKA__BOOTSTRAP_SERVERS or run `ridecast up`")
    return f"127.0.0.1:{rec['port']}"


def wait_ready(servers: str, timeout: float = 60.0, process: ManagedProcess | None = None) -> None:
    """Block until the broker answers a metadata request; fail fast if its process died."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.info() is None:
            raise BrokerNotReadyError(f"the broker exited during start-up; see {process.log_file}")
        try:
            admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000, client_id="ridecast-health")
            try:
                admin.describe_cluster()
            finally:
                admin.close()
            return
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.3)
    where = f"; see {process.log_file}" if process is not None else ""
    raise BrokerNotReadyError(f"Kafka at {servers} not ready after {timeout:.0f}s: {last}{where}")


def broker_health(settings: Settings | None = None) -> str:
    """One metadata round trip to the embedded broker: "ok, N topics" or what went wrong (never raises)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings), request_timeout_ms=3000,
                                 client_id="ridecast-health")
        try:
            return f"ok, {len(admin.list_topics())} topics"
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError, BrokerNotReadyError) as exc:
        return f"not answering: {type(exc).__name__}"


def _java_command(layout: BrokerLayout, main: str, *args: str, heap: str) -> list[str]:
    return ["java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={layout.log4j_properties}", "-cp", f"{kafka_lib_dir()}/*", main, *args]


def _format_storage(layout: BrokerLayout, cluster_id: str) -> None:
    """Format the KRaft log dir once (what `kafka-storage.sh format --standalone` does)."""
    if (layout.data_dir / "meta.properties").exists():
        return
    # --cluster-id=ID, not "-t ID": a base64 id may start with "-" and would be parsed as an option
    cmd = _java_command(layout, "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}",
                        "-c", str(layout.server_properties), heap="256m")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerNotReadyError(f"formatting the Kafka log dir failed: {done.stderr.strip() or done.stdout.strip()}")


def start_broker(settings: Settings | None = None, *, timeout: float = 90.0) -> str:
    """Start the embedded broker if it is not running (idempotent); returns its bootstrap address."""
    s = settings or get_settings()
    if s.kafka.bootstrap_servers:
        wait_ready(s.kafka.bootstrap_servers, timeout=timeout)
        return s.kafka.bootstrap_servers
    proc = broker_process(s)
    if (rec := proc.info()) is None:
        if not any(kafka_lib_dir().glob("kafka_2.13-*.jar")):
            raise BrokerNotInstalledError(f"Apache Kafka is not installed in {kafka_lib_dir()}: run `make install`")
        layout = broker_layout(s)
        ident = layout.identity(s)
        layout.data_dir.mkdir(parents=True, exist_ok=True)
        layout.server_properties.write_text(
            render_server_properties(layout.data_dir, ident["port"], ident["controller_port"]))
        layout.log4j_properties.write_text(LOG4J2)
        _format_storage(layout, ident["cluster_id"])
        rec = proc.start(_java_command(layout, "kafka.Kafka", str(layout.server_properties), heap=s.kafka.broker_heap),
                         extra={"port": ident["port"], "controller_port": ident["controller_port"]})
    servers = f"127.0.0.1:{rec['port']}"
    wait_ready(servers, timeout=timeout, process=proc)
    return servers


def stop_broker(settings: Settings | None = None) -> bool:
    """Controlled shutdown (SIGTERM: Kafka flushes and closes its logs), SIGKILL after 30 s."""
    return broker_process(settings).stop(timeout=30)


def ensure_topics(settings: Settings | None = None, servers: str | None = None) -> list[str]:
    """Create ridecast's topics explicitly, with the partition counts from settings."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    s = settings or get_settings()
    servers = servers or bootstrap_servers(s)
    k = s.kafka
    wanted = {k.events_topic: k.partitions, k.features_topic: 1, k.dead_letter_topic: 1}
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="ridecast-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, p, 1) for t, p in wanted.items() if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return sorted(wanted)
