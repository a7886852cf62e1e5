"""``ridecast train --on-cluster`` and ``ridecast status --cluster`` (ridecast.stack.cluster) against the
``kubernetes`` client's HTTP layer.

The API server is the one thing mocked, and only because none can run here (no kube-apiserver, kind, k3s or kwok
in any reachable registry: ../shared/PLATFORM.md): tests.k8s_api is a real HTTP server on 127.0.0.1 answering the
custom-resource REST paths. The real client (its kubeconfig loading, serialisation, urllib3) sends the requests,
and the tests assert on what arrived (method, path, token, body, the watch's query) and on the CLI's output and exit
code; the RayJob's state changes reach the client as watch events the stand-in streams from a script. The
RayJob body is also validated against KubeRay's own RayJob CRD schema with unknown fields as errors, the check the
API server would make. What only a live cluster shows (KubeRay actually running the job) is the deploy
workflow's part.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from ridecast.cli import app
from ridecast.config import Settings, get_settings
from ridecast.stack import cluster
from tests.k8s_api import DELETE, END_STREAM, GONE_EVENT, GONE_RESPONSE, FakeApiServer

RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": "rc-1"}
SUCCEEDED = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "rayClusterName": "rc-1",
             "message": "Job finished successfully."}
INITIALIZING = {"jobDeploymentStatus": "Initializing"}
FAILED = {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
          "message": "Job entrypoint command failed with exit code 1"}


# ---------------------------------------------------------------- the RayJob body against the CRD


def _closed(schema: dict) -> dict:
    """An openAPIV3Schema where objects that list properties reject unknown ones (kubectl --validate=strict)."""
    schema = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if ("properties" in node and not node.get("x-kubernetes-preserve-unknown-fields")
                    and "additionalProperties" not in node):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


@functools.lru_cache(maxsize=1)
def _rayjob_validator(crd_dir: Path) -> jsonschema.Validator:
    text = (crd_dir / "ray.io_rayjobs.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: the CRD is 1.5 MB
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _closed(v1["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _errors(body: dict, crd_dir: Path) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _rayjob_validator(crd_dir).iter_errors(body)]


def test_rayjob_body_validates_against_the_crd_strictly(crd_dir):
    s = Settings(cluster={"env_secret": "ridecast-env", "worker_replicas": 3})
    body = cluster.rayjob_manifest(s, "ridecast-train-x", args=("--horizons", "15,30"))
    assert _errors(body, crd_dir) == []
    broken = copy.deepcopy(body)
    broken["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["envFrm"] = []
    broken["spec"]["shutdownAfterJobFinish"] = True
    # the check can fail: a misspelt field is an error, as with kubectl --validate=strict
    errs = _errors(broken, crd_dir)
    assert len(errs) == 2 and all("envFrm" in e or "shutdownAfterJobFinish" in e for e in errs), errs


def test_rayjob_body_runs_the_entrypoint_hardened_with_the_charts_environment():
    s = Settings(cluster={"env_secret": "ridecast-env", "namespace": "ml", "image": "ghcr.io/o/ridecast-app:1.2.3",
                          "shm_size": "2Gi"})
    body = cluster.rayjob_manifest(s, "ridecast-train-x", args=("--workers", "4"))
    spec = body["spec"]
    assert (body["apiVersion"], body["kind"], body["metadata"]["namespace"]) == ("ray.io/v1", "RayJob", "ml")
    assert spec["entrypoint"] == "ridecast train --workers 4"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 3600
    assert spec["rayClusterSpec"]["rayVersion"] == "2.60.0"
    pods = [spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"], spec["submitterPodTemplate"]["spec"],
            *[g["template"]["spec"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]]]
    assert len(pods) == 3 and spec["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == \
            "RuntimeDefault"
        assert pod["serviceAccountName"] == "ridecast" and pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        assert c["image"] == "ghcr.io/o/ridecast-app:1.2.3"
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"] == {
            "drop": ["ALL"]}
        assert c["envFrom"] == [{"configMapRef": {"name": "ridecast-config"}}, {"secretRef": {"name": "ridecast-env"}}]
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        # Ray's object store: a memory-backed /dev/shm of cluster.shm_size, not the container's 64 MiB
        assert {"name": "shm", "mountPath": "/dev/shm"} in c["volumeMounts"]
        assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]


def test_rayjob_names_are_dns_labels():
    names = {cluster.rayjob_name() for _ in range(20)}
    assert len(names) > 1 and all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", n) for n in names)


# ---------------------------------------------------------------- train --on-cluster through the real client


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """Settings read by the CLI process: a fresh state dir, short watches, a kubeconfig context to the fake server."""
    monkeypatch.setenv("RIDECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RIDECAST_CLUSTER__WATCH_TIMEOUT_S", "5")
    monkeypatch.setenv("RIDECAST_CLUSTER__FOLLOW_TIMEOUT_S", "30")  # a broken follow fails, not hangs
    monkeypatch.setenv("RIDECAST_CLUSTER__CONTEXT", "fake")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args, env={"COLUMNS": "250"})


def test_train_on_cluster_creates_the_rayjob_and_follows_it_to_success(cli_env, monkeypatch):
    # the first GET finds it not reconciled yet; the rest arrives by one watch (a change that leaves the state as it
    # was, here a new startTime, prints nothing)
    with FakeApiServer(rayjob_statuses=[{}], rayjob_script=[INITIALIZING, RUNNING, {**RUNNING, "startTime": "t"},
                                                            SUCCEEDED]) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
        out = _invoke(["train", "--on-cluster", "--horizons", "30,15"])
    assert out.exit_code == 0, out.output
    (post,) = api.of("POST", "rayjobs")
    assert post.path == "/apis/ray.io/v1/namespaces/ridecast/rayjobs"
    # the kubeconfig's context was used: its server and its token
    assert {k.lower(): v for k, v in post.headers.items()}["authorization"] == "Bearer t0ken"
    name = post.body["metadata"]["name"]
    assert post.body == cluster.rayjob_manifest(get_settings(), name, args=("--horizons", "15,30"))
    (get,) = api.reads("rayjobs")
    assert get.path == f"/apis/ray.io/v1/namespaces/ridecast/rayjobs/{name}"
    (watch,) = api.watches("rayjobs")
    assert watch.path.startswith("/apis/ray.io/v1/namespaces/ridecast/rayjobs?")
    # from what the GET read (created at resourceVersion 1, its first status at 2), at most watch_timeout_s
    assert {k: watch.query[k] for k in ("fieldSelector", "resourceVersion", "timeoutSeconds")} == {
        "fieldSelector": f"metadata.name={name}", "resourceVersion": "2", "timeoutSeconds": "5"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("RayJob")]
    assert lines == [f"RayJob {name}: Pending / job -", f"RayJob {name}: Initializing / job -",
                     f"RayJob {name}: Running / job RUNNING",
                     f"RayJob {name}: Complete / job SUCCEEDED — Job finished successfully."]
    assert f"✓ RayJob {name} in ridecast succeeded" in out.stdout and "Ray cluster rc-1" in out.stdout


def test_train_on_cluster_exits_nonzero_with_the_operators_message_on_failure(cli_env, monkeypatch):
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=[FAILED]) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
        out = _invoke(["train", "--on-cluster"])
    assert out.exit_code == 1, out.output
    assert re.search(r"error: RayJob ridecast-train-\S+ failed: Failed / job FAILED \(AppFailed\): Job entrypoint "
                     r"command failed with exit code 1", out.output), out.output
    assert (len(api.reads("rayjobs")), len(api.watches("rayjobs"))) == (1, 1)


def test_forbidden_create_is_one_line_and_exit_2(cli_env, monkeypatch):
    with FakeApiServer(fail_create=403) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
        out = _invoke(["train", "--on-cluster"])
    assert out.exit_code == 2, out.output
    assert "HTTP 403 Forbidden: rayjobs.ray.io is forbidden" in out.output and "Traceback" not in out.output
    assert not api.of("GET", "rayjobs")


def test_unknown_context_and_unreachable_server_are_clear_errors(cli_env, monkeypatch):
    with FakeApiServer() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "other", context="other")))
        out = _invoke(["status", "--cluster"])
        assert out.exit_code == 2 and "cannot configure the Kubernetes client (context 'fake')" in out.output, \
            out.output
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
    out = _invoke(["status", "--cluster"])  # the server is gone now
    assert out.exit_code == 2 and "cannot reach the API server" in out.output and "Traceback" not in out.output


# ---------------------------------------------------------------- following the RayJob by a watch


def _follow(api: FakeApiServer, s: Settings | None = None, name: str = "j", **kw) -> list[cluster.RayJobState]:
    """follow_rayjob on RayJob ``name`` (put in the stand-in unless already there); the states it reported.
    Raises what follow_rayjob raises, with the states so far on the exception."""
    s = s or Settings(cluster={"follow_timeout_s": 30, "watch_timeout_s": 5})
    api.objects.setdefault(("rayjobs", "j"), cluster.rayjob_manifest(s, "j"))
    states: list[cluster.RayJobState] = []
    with cluster.api_client(s, api.configuration()) as client:
        try:
            assert cluster.follow_rayjob(s, client, name, on_change=states.append, **kw) == states[-1]
        except cluster.ClusterError as exc:
            exc.states = states
            raise
    return states


@pytest.mark.parametrize("changes", [2, 40])
def test_follow_watches_the_rayjob_instead_of_polling_it(changes):
    # many state changes (the message moving along), still one GET and one watch: nothing polls
    steps = [{**RUNNING, "message": f"step {i}"} for i in range(changes)]
    with FakeApiServer(rayjob_statuses=[INITIALIZING], rayjob_script=[*steps, SUCCEEDED]) as api:
        states = _follow(api)
    assert [st.message for st in states] == ["", *(f"step {i}" for i in range(changes)), "Job finished successfully."]
    assert states[-1].succeeded and states[0].deployment_status == "Initializing"
    assert (len(api.reads("rayjobs")), len(api.watches("rayjobs"))) == (1, 1)
    (watch,) = api.watches("rayjobs")
    assert watch.query["fieldSelector"] == "metadata.name=j" and watch.query["watch"].lower() in ("true", "1")


def test_follow_to_failure_is_the_typed_error_with_the_rayjobs_message():
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=[{**RUNNING, "message": "training"}, FAILED]) as api:
        with pytest.raises(cluster.RayJobFailedError, match=r"RayJob j failed: Failed / job FAILED \(AppFailed\): "
                           r"Job entrypoint command failed with exit code 1") as err:
            _follow(api)
    assert err.value.state.reason == "AppFailed" and [st.message for st in err.value.states][-2:] == [
        "training", "Job entrypoint command failed with exit code 1"]
    assert len(api.watches("rayjobs")) == 1


@pytest.mark.parametrize(("marker", "script_head", "watched_from"), [
    (END_STREAM, [{**RUNNING, "message": "a"}], ["2", "3"]),  # the server ended the watch (its timeoutSeconds)
    (GONE_EVENT, [{**RUNNING, "message": "a"}], ["2", "3"]),  # 410 Gone as an ERROR event in the stream
    (GONE_RESPONSE, [], ["2", "2"]),  # 410 Gone as the watch request's answer
])
def test_follow_reads_and_watches_again_when_the_watch_ends_or_is_gone(marker, script_head, watched_from):
    script = [*script_head, marker, {**RUNNING, "message": "b"}, SUCCEEDED]
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=script) as api:
        states = _follow(api)
    assert states[-1].succeeded and [st.message for st in states] == ["", *(["a"] if script_head else []), "b",
                                                                       "Job finished successfully."]
    assert (len(api.reads("rayjobs")), len(api.watches("rayjobs"))) == (2, 2)
    # each watch starts from what the GET before it read: the second misses nothing and replays nothing
    assert [w.query["resourceVersion"] for w in api.watches("rayjobs")] == watched_from


@pytest.mark.parametrize(("script", "waits"), [
    # a server (or a proxy) that ends every watch at once with nothing to say: waits double, capped at 2 s here
    ([END_STREAM] * 5, [0.5, 1.0, 2.0, 2.0, 2.0]),
    # an event resets the wait
    ([END_STREAM, END_STREAM, {**RUNNING, "message": "a"}, END_STREAM, END_STREAM], [0.5, 1.0, 0.5]),
    # 410 Gone is not a drop: the next GET gives a fresh resourceVersion, at once
    ([GONE_RESPONSE, GONE_RESPONSE, GONE_RESPONSE], []),
])
def test_a_watch_dropped_at_once_is_retried_with_a_growing_wait(script, waits):
    s = Settings(cluster={"follow_timeout_s": 30, "watch_timeout_s": 5, "watch_backoff_max_s": 2})
    slept: list[float] = []
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=[*script, SUCCEEDED]) as api:
        states = _follow(api, s, sleep=slept.append)
    assert states[-1].succeeded and slept == waits
    # each ended watch: one GET and one watch more, never a tight loop of either
    ended = sum(x in (END_STREAM, GONE_RESPONSE) for x in script)
    assert len(api.watches("rayjobs")) == len(api.reads("rayjobs")) == ended + 1


def test_a_deleted_rayjob_is_the_typed_error():
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=[DELETE]) as api:
        with pytest.raises(cluster.RayJobDeletedError, match=r"RayJob j was deleted while Running / job RUNNING"):
            _follow(api)
    # told by the DELETED event itself, not by a later GET's 404
    assert (len(api.reads("rayjobs")), len(api.watches("rayjobs"))) == (1, 1)
    with FakeApiServer() as api:  # gone before the first GET (404)
        with pytest.raises(cluster.RayJobDeletedError, match=r"RayJob gone was deleted while pending / job -"):
            _follow(api, name="gone")
    assert not api.watches("rayjobs")


@pytest.mark.parametrize("status", [SUCCEEDED, FAILED])
def test_a_rayjob_finished_at_the_first_get_is_not_watched(status):
    with FakeApiServer(rayjob_statuses=[status]) as api:
        if status is FAILED:
            with pytest.raises(cluster.RayJobFailedError):
                _follow(api)
        else:
            assert _follow(api)[-1].succeeded
    assert (len(api.reads("rayjobs")), len(api.watches("rayjobs"))) == (1, 0)


def test_follow_gives_up_after_the_timeout_and_says_the_job_keeps_running():
    # each watch the server ends at once "took" 10 s on the test's clock: watches of 10, 10 and the 5 s left, then
    # the GET at 30 s is past the 25 s
    s = Settings(cluster={"follow_timeout_s": 25, "watch_timeout_s": 10})
    with FakeApiServer(rayjob_statuses=[RUNNING], rayjob_script=[END_STREAM] * 10) as api:
        with pytest.raises(cluster.RayJobTimeoutError, match=r"RayJob j still Running after 25s.*kubectl get "
                           r"rayjob j"):
            _follow(api, s, clock=lambda: 10.0 * len(api.watches("rayjobs")))
    assert [w.query["timeoutSeconds"] for w in api.watches("rayjobs")] == ["10", "10", "5"]
    assert len(api.reads("rayjobs")) == 4


def test_follow_times_out_on_a_silent_watch_without_polling():
    # a real clock: the server holds the watch open with nothing to say until its timeoutSeconds (the follow's
    # 1 s left); the client waits on it instead of asking again
    s = Settings(cluster={"follow_timeout_s": 1, "watch_timeout_s": 300})
    t0 = time.monotonic()
    with FakeApiServer(rayjob_statuses=[RUNNING]) as api:
        with pytest.raises(cluster.RayJobTimeoutError, match=r"after 1s"):
            _follow(api, s)
    assert 1 <= time.monotonic() - t0 < 10
    assert [w.query["timeoutSeconds"] for w in api.watches("rayjobs")] == ["1"]
    assert len(api.reads("rayjobs")) == 2


def test_missing_client_is_a_not_installed_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(cluster.ClusterClientNotInstalledError, match="pip install kubernetes==37.0.1"):
        cluster.api_client(Settings(cluster={"context": "x"}))


# ---------------------------------------------------------------- status --cluster


def _obj(kind: str, name: str, status: dict) -> dict:
    return {"apiVersion": "x/v1", "kind": kind, "metadata": {"name": name, "namespace": "ridecast"}, "status": status}


FLINK_OK = {"jobStatus": {"state": "RUNNING", "jobId": "abc"}, "lifecycleState": "STABLE",
            "jobManagerDeploymentStatus": "READY"}
RAYSERVICE_OK = {"conditions": [{"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints",
                                 "message": ""}], "numServeEndpoints": 2,
                 "activeServiceStatus": {"applicationStatuses": {"forecast": {"status": "RUNNING"}}}}
KAFKA_OK = {"conditions": [{"type": "Ready", "status": "True"}], "kafkaVersion": "4.1.0",
            "listeners": [{"name": "plain", "bootstrapServers": "ridecast-kafka-bootstrap.ridecast.svc:9092"}]}
KAFKA_BAD = {"conditions": [{"type": "NotReady", "status": "True", "reason": "TimeoutException",
                             "message": "Exceeded timeout of 300000ms while waiting for Pods"}]}


def _serve(api: FakeApiServer, kafka: dict, flink: dict = FLINK_OK) -> None:
    api.objects[("flinkdeployments", "ridecast-features")] = _obj("FlinkDeployment", "ridecast-features", flink)
    api.objects[("rayservices", "ridecast-serve")] = _obj("RayService", "ridecast-serve", RAYSERVICE_OK)
    api.objects[("kafkas", "ridecast")] = _obj("Kafka", "ridecast", kafka)


def test_status_cluster_reads_the_three_resources_and_exits_0_when_ready(cli_env, monkeypatch):
    with FakeApiServer() as api:
        _serve(api, KAFKA_OK)
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
        out = _invoke(["status", "--cluster"])
    assert out.exit_code == 0, out.output
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", "/apis/flink.apache.org/v1beta1/namespaces/ridecast/flinkdeployments/ridecast-features"),
        ("GET", "/apis/ray.io/v1/namespaces/ridecast/rayservices/ridecast-serve"),
        ("GET", "/apis/kafka.strimzi.io/v1/namespaces/ridecast/kafkas/ridecast")]
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("│")}
    assert "job RUNNING, lifecycle STABLE" in rows["FlinkDeployment"] and "yes" in rows["FlinkDeployment"]
    assert "Ready=True" in rows["RayService"] and "forecast RUNNING" in rows["RayService"]
    assert "Ready" in rows["Kafka"] and "kafka 4.1.0" in rows["Kafka"]


def test_status_cluster_says_why_and_exits_1_when_not_ready(cli_env, monkeypatch):
    monkeypatch.setenv("RIDECAST_CLUSTER__RAY_SERVICE", "other-serve")  # not deployed under that name
    with FakeApiServer() as api:
        _serve(api, KAFKA_BAD, flink={"jobStatus": {"state": "RECONCILING"}, "lifecycleState": "DEPLOYED",
                                      "error": "java.lang.RuntimeException: no checkpoint storage\n\tat ..."})
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(cli_env / "kubeconfig")))
        out = _invoke(["status", "--cluster"])
    assert out.exit_code == 1, out.output
    assert "NotReady (TimeoutException)" in out.stdout and "Exceeded timeout of 300000ms" in out.stdout
    assert "job RECONCILING" in out.stdout and "no checkpoint storage" in out.stdout
    assert "other-serve" in out.stdout and "not found" in out.stdout


def test_status_parsers_follow_each_operators_words():
    assert cluster.flink_deployment_state(_obj("FlinkDeployment", "f", FLINK_OK)).ready
    assert not cluster.flink_deployment_state(_obj("FlinkDeployment", "f", {})).ready
    assert cluster.rayservice_state(_obj("RayService", "r", {"serviceStatus": "Running"})).ready  # older KubeRay
    assert not cluster.rayservice_state(_obj("RayService", "r", {"conditions": [
        {"type": "Ready", "status": "False", "reason": "Initializing"}]})).ready
    bad = cluster.kafka_state(_obj("Kafka", "k", KAFKA_BAD))
    assert (bad.ready, bad.state) == (False, "NotReady (TimeoutException)")
    assert cluster.rayjob_state(_obj("RayJob", "j", FAILED)).failed
    assert cluster.rayjob_state(_obj("RayJob", "j", {"jobDeploymentStatus": "ValidationFailed"})).failed
    assert not cluster.rayjob_state(_obj("RayJob", "j", RUNNING)).finished
