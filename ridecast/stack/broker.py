"""The embedded Kafka-protocol broker (Tansu), bound to 127.0.0.1 only.

On Kubernetes ``kafka.bootstrap_servers`` points at a real Kafka and none of this runs. Tansu's in-memory
storage is the only local one this build has: a broker restart loses unconsumed messages, which is why
the feature job writes everything it reads to the bronze table at each checkpoint.
"""

from __future__ import annotations

import time

from ridecast.config import Settings, get_settings
from ridecast.stack.process import ManagedProcess, free_port

__all__ = ["broker_process", "bootstrap_servers", "ensure_topics", "start_broker", "stop_broker", "wait_ready"]


def broker_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("broker", s.run_dir, s.log_dir)


def bootstrap_servers(settings: Settings | None = None) -> str:
    """Where Kafka is: the configured servers, else the running embedded broker."""
    s = settings or get_settings()
    if s.kafka.bootstrap_servers:
        return s.kafka.bootstrap_servers
    rec = broker_process(s).info()
    if rec is None:
        raise RuntimeError("no Kafka: set RIDECAST_KAFKA__BOOTSTRAP_SERVERS or run `ridecast up`")
    return f"127.0.0.1:{rec['port']}"


def wait_ready(servers: str, timeout: float = 30.0) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000, client_id="ridecast-health")
            admin.list_topics()
            admin.close()
            return
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"Kafka at {servers} not ready after {timeout:.0f}s: {last}")


def start_broker(settings: Settings | None = None) -> str:
    """Start the embedded broker if it is not running; returns its bootstrap address."""
    s = settings or get_settings()
    if s.kafka.bootstrap_servers:
        wait_ready(s.kafka.bootstrap_servers)
        return s.kafka.bootstrap_servers
    proc = broker_process(s)
    if (rec := proc.info()) is None:
        if not s.broker_binary.exists():
            raise RuntimeError(f"broker binary missing at {s.broker_binary}: run scripts/bootstrap.sh")
        port = s.kafka.broker_port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        rec = proc.start(
            [str(s.broker_binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            extra={"port": port},
        )
    servers = f"127.0.0.1:{rec['port']}"
    wait_ready(servers)
    return servers


def stop_broker(settings: Settings | None = None) -> bool:
    return broker_process(settings).stop(timeout=15)


def ensure_topics(settings: Settings | None = None, servers: str | None = None) -> list[str]:
    """Create ridecast's topics explicitly (auto-creation would pick the broker's partition count)."""
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
