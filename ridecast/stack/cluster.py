"""ridecast on Kubernetes, from the CLI: submit training as a KubeRay ``RayJob`` and follow it to the end by
a watch (``ridecast train --on-cluster``), and read what the operators report about the deployment the chart created
(``ridecast status --cluster``: the feature job's ``FlinkDeployment``, the serving ``RayService``, the Strimzi
``Kafka``).

Everything talks to the API server through the official ``kubernetes`` Python client
(``CustomObjectsApi``), the way ``kubectl`` does: kubeconfig context from ``cluster.context``, else the pod's
service account when running in-cluster (the retrain CronJob), else the default kubeconfig. The client is an
optional dependency, imported on first use, so the embedded stack never needs it.

The RayJob body is built by a pure function (:func:`rayjob_manifest`) from settings alone: the app image, the
chart's ConfigMap (and optional Secret) as the environment, so the job sees the same catalog, warehouse, Kafka
and MLflow as every other component; hardened pods (non-root, read-only root filesystem with ``/tmp`` as an
emptyDir, no capabilities, RuntimeDefault seccomp); KubeRay deletes the cluster when the job ends and the
RayJob ``ttlSecondsAfterFinished`` later.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from ridecast.config import Settings, get_settings

__all__ = [
    "FLINK_DEPLOYMENT",
    "KAFKA",
    "RAYJOB",
    "RAYSERVICE",
    "ClusterApiError",
    "ClusterClientNotInstalledError",
    "ClusterConfigError",
    "ClusterError",
    "ClusterStatus",
    "RayJobDeletedError",
    "RayJobFailedError",
    "RayJobResult",
    "RayJobState",
    "RayJobTimeoutError",
    "ResourceState",
    "api_client",
    "cluster_status",
    "flink_deployment_state",
    "follow_rayjob",
    "kafka_state",
    "rayjob_manifest",
    "rayjob_name",
    "rayjob_state",
    "rayservice_state",
    "submit_rayjob",
    "train_on_cluster",
]


@dataclass(frozen=True)
class CustomResource:
    """Where the API server serves a custom resource: /apis/<group>/<version>/namespaces/<ns>/<plural>."""

    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


RAYJOB = CustomResource("RayJob", "ray.io", "v1", "rayjobs")
RAYSERVICE = CustomResource("RayService", "ray.io", "v1", "rayservices")
FLINK_DEPLOYMENT = CustomResource("FlinkDeployment", "flink.apache.org", "v1beta1", "flinkdeployments")
KAFKA = CustomResource("Kafka", "kafka.strimzi.io", "v1", "kafkas")

# the app image's Ray user (k8s/images/app/Dockerfile: uid 1000, group users 100)
APP_UID, APP_GID = 1000, 100

# a watch's socket: connecting, and waiting for a byte beyond the watch's own timeoutSeconds
_CONNECT_TIMEOUT_S = 30
_WATCH_READ_SLACK_S = 30
# the first wait after a watch that ended at once with no event; doubled up to cluster.watch_backoff_max_s
_WATCH_BACKOFF_FIRST_S = 0.5


class ClusterError(Exception):
    """Base of everything that can go wrong talking to the cluster."""


class ClusterClientNotInstalledError(ImportError):
    """The ``kubernetes`` Python client is missing."""

    def __init__(self) -> None:
        super().__init__("the Kubernetes commands need the `kubernetes` Python client: run scripts/bootstrap.sh "
                         "(it installs requirements/app.lock) or `pip install kubernetes==37.0.1`")


class ClusterConfigError(ClusterError):
    """No way to reach a cluster: no in-cluster service account, no kubeconfig, or an unknown context."""


class ClusterApiError(ClusterError):
    """The API server refused a request (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RayJobFailedError(ClusterError):
    def __init__(self, state: RayJobState) -> None:
        super().__init__(f"RayJob {state.name} failed: {state.deployment_status} / job {state.job_status or '-'}"
                         + (f" ({state.reason})" if state.reason else "")
                         + (f": {state.message}" if state.message else ""))
        self.state = state


class RayJobDeletedError(ClusterError):
    def __init__(self, state: RayJobState) -> None:
        super().__init__(f"RayJob {state.name} was deleted while {state.deployment_status or 'pending'} / job "
                         f"{state.job_status or '-'}: its Ray cluster went with it and the training did not finish")
        self.state = state


class RayJobTimeoutError(ClusterError):
    def __init__(self, state: RayJobState, seconds: float) -> None:
        super().__init__(f"RayJob {state.name} still {state.deployment_status or 'pending'} after {seconds:g}s "
                         f"(cluster.follow_timeout_s); it keeps running: kubectl get rayjob {state.name}")
        self.state = state


def _k8s() -> ModuleType:
    try:
        import kubernetes
    except ImportError:
        raise ClusterClientNotInstalledError() from None
    return kubernetes


def api_client(settings: Settings | None = None, configuration: Any = None) -> Any:
    """A ``kubernetes.client.ApiClient``: for ``configuration`` if given, else from ``cluster.context`` of the
    kubeconfig, else the in-cluster service account, else the kubeconfig's current context."""
    k = _k8s()
    if configuration is not None:
        return k.client.ApiClient(configuration)
    s = settings or get_settings()
    cfg = k.client.Configuration()
    exc_types = (k.config.ConfigException, FileNotFoundError)
    # $KUBECONFIG as it is now (the client reads it once, at import); it may list several files, as for kubectl
    kubeconfig = os.environ.get("KUBECONFIG") or None
    try:
        if s.cluster.context:
            k.config.load_kube_config(config_file=kubeconfig, context=s.cluster.context, client_configuration=cfg,
                                      persist_config=False)
        else:
            try:
                k.config.load_incluster_config(client_configuration=cfg)
            except k.config.ConfigException:
                k.config.load_kube_config(config_file=kubeconfig, client_configuration=cfg, persist_config=False)
    except exc_types as exc:
        where = f"context {s.cluster.context!r}" if s.cluster.context else "no in-cluster service account and"
        raise ClusterConfigError(f"cannot configure the Kubernetes client ({where}): {exc}; set KUBECONFIG or "
                                 "RIDECAST_CLUSTER__CONTEXT") from None
    return k.client.ApiClient(cfg)


def _api(api: Any) -> Any:
    return _k8s().client.CustomObjectsApi(api)


def _call(what: str, fn: Callable[[], Any]) -> Any:
    """Run one API call; the client's errors become :class:`ClusterApiError` with the server's message."""
    k = _k8s()
    import urllib3

    try:
        return fn()
    except k.client.exceptions.ApiException as exc:
        raise ClusterApiError(f"{what}: HTTP {exc.status} {exc.reason}: {_api_message(exc)}", exc.status) from None
    except urllib3.exceptions.HTTPError as exc:
        raise ClusterApiError(f"{what}: cannot reach the API server: {exc}") from None


def _api_message(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")


# ---------------------------------------------------------------- the RayJob (pure)


def rayjob_name(now: datetime | None = None) -> str:
    """A fresh, DNS-safe RayJob name; KubeRay derives its RayCluster's and pods' names from it, so it is short."""
    now = now or datetime.now(timezone.utc)
    return f"ridecast-train-{now:%m%d%H%M}-{secrets.token_hex(2)}"


def _env_from(c: Any) -> list[dict]:
    env = [{"configMapRef": {"name": c.config_map}}]
    if c.env_secret:
        env.append({"secretRef": {"name": c.env_secret}})
    return env


def _container_security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_GID, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _pod_spec(c: Any, name: str, cpu: str, memory: str, *, restart_never: bool = False) -> dict:
    """A hardened pod of the app image; requests equal limits (Ray sizes its resources from the limits)."""
    resources = {"cpu": cpu, "memory": memory}
    spec = {
        "serviceAccountName": c.service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_GID, "fsGroup": APP_GID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": name,
            "image": c.image,
            "imagePullPolicy": c.image_pull_policy,
            "envFrom": _env_from(c),
            # the driver joins the RayJob's cluster instead of starting a local Ray (training.ray_address)
            "env": [{"name": "RIDECAST_TRAINING__RAY_ADDRESS", "value": "auto"}],
            "resources": {"requests": dict(resources), "limits": dict(resources)},
            "securityContext": _container_security(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
        }],
        # the image keeps every writable path under /tmp (Ray's session dir, ridecast's state, caches); Ray's
        # object store needs more /dev/shm than a container's 64 MiB
        "volumes": [{"name": "tmp", "emptyDir": {}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": c.shm_size}}],
    }
    if restart_never:
        spec["restartPolicy"] = "Never"
    return spec


def rayjob_manifest(settings: Settings, name: str, *, args: tuple[str, ...] = ()) -> dict:
    """The ``ray.io/v1`` RayJob that runs ``cluster.entrypoint`` (plus ``args``) on a fresh Ray cluster of the
    app image: a head and ``cluster.worker_replicas`` workers, shut down when the job finishes."""
    c = settings.cluster
    labels = {"app.kubernetes.io/name": "ridecast", "app.kubernetes.io/component": "train",
              "app.kubernetes.io/managed-by": "ridecast-cli"}
    workers = {
        "groupName": "workers",
        "replicas": c.worker_replicas,
        "minReplicas": c.worker_replicas,
        "maxReplicas": c.worker_replicas,
        "rayStartParams": {},
        "template": {"metadata": {"labels": labels}, "spec": _pod_spec(c, "ray-worker", c.worker_cpu,
                                                                        c.worker_memory)},
    }
    return {
        "apiVersion": RAYJOB.api_version,
        "kind": RAYJOB.kind,
        "metadata": {"name": name, "namespace": c.namespace, "labels": labels},
        "spec": {
            "entrypoint": " ".join([c.entrypoint, *args]),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": c.ttl_seconds_after_finished,
            "activeDeadlineSeconds": c.active_deadline_s,
            "submissionMode": "K8sJobMode",
            "submitterPodTemplate": {"metadata": {"labels": labels},
                                     "spec": _pod_spec(c, "ray-job-submitter", "500m", "512Mi", restart_never=True)},
            "rayClusterSpec": {
                "rayVersion": c.ray_version,
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"metadata": {"labels": labels},
                                 "spec": _pod_spec(c, "ray-head", c.head_cpu, c.head_memory)},
                },
                "workerGroupSpecs": [workers] if c.worker_replicas else [],
            },
        },
    }


# ---------------------------------------------------------------- following it


@dataclass(frozen=True)
class RayJobState:
    name: str
    deployment_status: str | None  # status.jobDeploymentStatus: Initializing, Running, Complete, Failed, ...
    job_status: str | None  # status.jobStatus: PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED
    message: str = ""
    reason: str = ""
    ray_cluster: str = ""

    @property
    def succeeded(self) -> bool:
        return self.job_status == "SUCCEEDED"

    @property
    def failed(self) -> bool:
        return self.job_status in ("FAILED", "STOPPED") or self.deployment_status in ("Failed", "ValidationFailed")

    @property
    def finished(self) -> bool:
        return self.succeeded or self.failed


def rayjob_state(obj: dict) -> RayJobState:
    """A RayJob's progress from its ``status`` (absent until KubeRay first reconciles it)."""
    st = obj.get("status") or {}
    return RayJobState(obj["metadata"]["name"], st.get("jobDeploymentStatus") or None, st.get("jobStatus") or None,
                       st.get("message") or "", st.get("reason") or "", st.get("rayClusterName") or "")


@dataclass(frozen=True)
class RayJobResult:
    namespace: str
    state: RayJobState
    seconds: float


def submit_rayjob(settings: Settings, api: Any, *, name: str | None = None, args: tuple[str, ...] = ()) -> str:
    """Create the RayJob; returns its name."""
    body = rayjob_manifest(settings, name or rayjob_name(), args=args)
    ns = settings.cluster.namespace
    _call(f"creating RayJob {body['metadata']['name']} in {ns}", lambda: _api(api).create_namespaced_custom_object(
        RAYJOB.group, RAYJOB.version, ns, RAYJOB.plural, body))
    return body["metadata"]["name"]


def _read_rayjob(api: Any, namespace: str, name: str, seen: RayJobState | None) -> dict:
    """GET the RayJob; gone (404) means someone deleted it (:class:`RayJobDeletedError`)."""
    try:
        return _call(f"reading RayJob {name}", lambda: _api(api).get_namespaced_custom_object(
            RAYJOB.group, RAYJOB.version, namespace, RAYJOB.plural, name))
    except ClusterApiError as exc:
        if exc.status == 404:
            raise RayJobDeletedError(seen or RayJobState(name, None, None)) from None
        raise


def _watch_rayjob(api: Any, namespace: str, name: str, resource_version: str | None, timeout_s: int,
                  ended: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    """The RayJob's watch events (type, object) after ``resource_version``, until the API server ends the watch
    (after ``timeout_s``, its ``timeoutSeconds``), answers 410 Gone (that resourceVersion is too old: the HTTP
    status, or an ERROR event of code 410) or the connection drops: the caller then reads it again and watches
    again, and learns which from ``ended["how"]`` (``closed``, ``gone`` or ``dropped``). Any other refusal is a
    :class:`ClusterApiError`."""
    ended = ended if ended is not None else {}
    ended["how"] = "closed"
    k = _k8s()
    import urllib3

    w = k.watch.Watch()
    kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}", "timeout_seconds": timeout_s,
                              # the socket gives up too if the server ignores timeoutSeconds or the link dies quietly
                              "_request_timeout": (_CONNECT_TIMEOUT_S, timeout_s + _WATCH_READ_SLACK_S)}
    if resource_version:
        kwargs["resource_version"] = resource_version
    stream = w.stream(_api(api).list_namespaced_custom_object, RAYJOB.group, RAYJOB.version, namespace,
                      RAYJOB.plural, **kwargs)
    with closing(stream):  # leaving early closes the connection
        try:
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    yield event["type"], event["raw_object"]
        # an error answer, and (given timeout_seconds, so it does not retry on its own) an ERROR event, which the
        # client raises with the event's code as the status
        except k.client.exceptions.ApiException as exc:
            if exc.status == 410:
                ended["how"] = "gone"
                return
            raise ClusterApiError(f"watching RayJob {name}: HTTP {exc.status} {exc.reason}: {_api_message(exc)}",
                                  exc.status) from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            ended["how"] = "dropped"
            return  # a dropped or silent watch: read again (a real outage fails that GET)
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterApiError(f"watching RayJob {name}: cannot reach the API server: {exc}") from None


def follow_rayjob(settings: Settings, api: Any, name: str, *,
                  on_change: Callable[[RayJobState], None] | None = None,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> RayJobState:
    """Follow the RayJob until it succeeds (returned), fails (:class:`RayJobFailedError`) or is deleted
    (:class:`RayJobDeletedError`), at most ``cluster.follow_timeout_s`` (:class:`RayJobTimeoutError`);
    ``on_change`` hears each new state.

    As ``kubectl get --watch`` does: read it (its state, done at once if it has finished, and its
    resourceVersion), then watch it from that resourceVersion, each watch at most ``cluster.watch_timeout_s``
    (less when the follow's time is nearly up); when the API server ends a watch or answers 410 Gone, read it
    again and watch again. Each state change arrives as it happens; nothing polls. Only a watch that ended at once
    with no event, other than by 410 Gone (a proxy or a server dropping it), is followed by a wait before the next
    read: 0.5 s, doubling up to ``cluster.watch_backoff_max_s``, reset by any event, so a link that keeps
    dropping watches is not hammered in a tight loop."""
    c = settings.cluster
    deadline = clock() + c.follow_timeout_s
    seen: RayJobState | None = None

    def done(obj: dict) -> bool:
        nonlocal seen
        state = rayjob_state(obj)
        if state != seen and on_change is not None:
            on_change(state)
        seen = state
        if state.failed:
            raise RayJobFailedError(state)
        return state.succeeded

    backoff = 0.0
    while True:
        obj = _read_rayjob(api, c.namespace, name, seen)
        if done(obj):
            return seen
        left = deadline - clock()
        if left <= 0:
            raise RayJobTimeoutError(seen, c.follow_timeout_s)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        term = min(c.watch_timeout_s, math.ceil(left))
        ended: dict[str, str] = {}
        events, started = 0, clock()
        for kind, event_obj in _watch_rayjob(api, c.namespace, name, rv, term, ended):
            events += 1
            if kind == "DELETED":
                raise RayJobDeletedError(rayjob_state(event_obj))
            if done(event_obj):
                return seen
            if clock() >= deadline:
                break
        if events or ended.get("how") == "gone" or clock() - started >= term:
            backoff = 0.0  # news, a resourceVersion to refresh, or a watch that ran its term: read again at once
        else:
            backoff = min(c.watch_backoff_max_s, backoff * 2 if backoff else _WATCH_BACKOFF_FIRST_S)
            sleep(min(backoff, max(0.0, deadline - clock())))


def train_on_cluster(settings: Settings | None = None, *, configuration: Any = None, args: tuple[str, ...] = (),
                     on_change: Callable[[RayJobState], None] | None = None) -> RayJobResult:
    """``ridecast train --on-cluster``: create the RayJob and follow it to the end."""
    s = settings or get_settings()
    t0 = time.monotonic()
    with api_client(s, configuration) as api:
        name = submit_rayjob(s, api, args=args)
        state = follow_rayjob(s, api, name, on_change=on_change)
    return RayJobResult(s.cluster.namespace, state, time.monotonic() - t0)


# ---------------------------------------------------------------- status --cluster


@dataclass(frozen=True)
class ResourceState:
    kind: str
    name: str
    found: bool
    ready: bool
    state: str  # the operator's own words (job state, lifecycle, conditions)
    detail: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    namespace: str
    context: str | None
    resources: tuple[ResourceState, ...]

    @property
    def ready(self) -> bool:
        return all(r.ready for r in self.resources)


def _condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def flink_deployment_state(obj: dict) -> ResourceState:
    """Ready when the Flink operator reports the job RUNNING and the deployment STABLE (or just DEPLOYED)."""
    st = obj.get("status") or {}
    job = (st.get("jobStatus") or {}).get("state") or "-"
    lifecycle = st.get("lifecycleState") or "-"
    jm = st.get("jobManagerDeploymentStatus") or "-"
    ready = job == "RUNNING" and lifecycle in ("STABLE", "DEPLOYED")
    return ResourceState(FLINK_DEPLOYMENT.kind, obj["metadata"]["name"], True, ready,
                         f"job {job}, lifecycle {lifecycle}", f"jobManager {jm}" + _error(st.get("error")))


def _error(err: Any) -> str:
    if not err:
        return ""
    text = str(err).strip().splitlines()[0]
    return f"; error: {text[:200]}"


def rayservice_state(obj: dict) -> ResourceState:
    """Ready when KubeRay's ``Ready`` condition is True (older KubeRay: ``serviceStatus: Running``)."""
    st = obj.get("status") or {}
    cond = _condition(obj, "Ready")
    if cond is not None:
        ready = cond.get("status") == "True"
        state = f"Ready={cond.get('status')}" + (f" ({cond['reason']})" if cond.get("reason") else "")
        detail = cond.get("message") or ""
    else:
        ready = st.get("serviceStatus") == "Running"
        state, detail = f"serviceStatus {st.get('serviceStatus') or '-'}", ""
    apps = ((st.get("activeServiceStatus") or {}).get("applicationStatuses") or {})
    if apps:
        detail = "; ".join(filter(None, [detail, ", ".join(f"{k} {v.get('status', '-')}" for k, v in apps.items())]))
    if st.get("numServeEndpoints") is not None:
        detail = "; ".join(filter(None, [detail, f"{st['numServeEndpoints']} serve endpoint(s)"]))
    return ResourceState(RAYSERVICE.kind, obj["metadata"]["name"], True, ready, state, detail)


def kafka_state(obj: dict) -> ResourceState:
    """Ready when Strimzi's ``Ready`` condition is True; otherwise its NotReady condition says why."""
    st = obj.get("status") or {}
    cond = _condition(obj, "Ready")
    ready = cond is not None and cond.get("status") == "True"
    bad = cond or _condition(obj, "NotReady") or {}
    state = "Ready" if ready else (f"NotReady ({bad['reason']})" if bad.get("reason") else "NotReady")
    detail = "" if ready else (bad.get("message") or "")
    versions = [f"kafka {st['kafkaVersion']}"] if st.get("kafkaVersion") else []
    bootstrap = [f"{ln.get('name')} {ln.get('bootstrapServers')}" for ln in st.get("listeners") or []
                 if ln.get("bootstrapServers")]
    detail = "; ".join(filter(None, [detail, *versions, *bootstrap]))
    return ResourceState(KAFKA.kind, obj["metadata"]["name"], True, ready, state, detail)


def cluster_status(settings: Settings | None = None, *, configuration: Any = None) -> ClusterStatus:
    """Read the FlinkDeployment, RayService and Kafka named in ``settings.cluster`` (a missing one is reported,
    not an error: the chart can leave Kafka external)."""
    s = settings or get_settings()
    c = s.cluster
    wanted = ((FLINK_DEPLOYMENT, c.flink_deployment, flink_deployment_state),
              (RAYSERVICE, c.ray_service, rayservice_state),
              (KAFKA, c.kafka, kafka_state))
    out = []
    with api_client(s, configuration) as api:
        for res, name, parse in wanted:
            if not name:
                continue
            try:
                obj = _call(f"reading {res.kind} {name}", lambda res=res, name=name: _api(
                    api).get_namespaced_custom_object(res.group, res.version, c.namespace, res.plural, name))
            except ClusterApiError as exc:
                if exc.status != 404:
                    raise
                out.append(ResourceState(res.kind, name, False, False, "not found", f"no {res.plural} {name} in "
                                         f"{c.namespace}"))
                continue
            out.append(parse(obj))
    return ClusterStatus(c.namespace, c.context, tuple(out))
