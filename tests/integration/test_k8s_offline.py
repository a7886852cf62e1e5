"""Offline validation of the Kubernetes deployment (issue 10, item 8): everything a cluster would reject, checked
without one. helm lint/template per values file, kubernetes-validate --strict on the built-in kinds, every operator
resource against its CRD with unknown fields as errors, checkov over chart/manifests/Terraform/Dockerfiles/
workflows, terraform fmt, the workflow schema and actionlint, and assertions on the rendered pods: probes,
hardening, resources, image tags, Service ports, Serve autoscaling, NetworkPolicy reachability and the wiring.

Tests of a part skip only while that part is absent from the checkout (charts/ridecast, terraform/, ...) or a tool
cannot be installed on the machine (terraform); everything else fails with every problem listed.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ridecast.config import Settings
from tests import k8s_validation as kv

ROOT = kv.ROOT
CHART = kv.CHART
VALUES = kv.values_files(CHART) if CHART.is_dir() else []
CUSTOM_KINDS = {"FlinkDeployment", "RayService", "RayJob", "Kafka", "KafkaNodePool", "KafkaTopic",
                "ServiceMonitor", "PrometheusRule"}
WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / ".github" / "workflows").glob("*.yaml")])
DOCKERFILES = sorted((ROOT / "k8s" / "images").glob("*/Dockerfile"))

# the operators' API groups: their resources are checked against the CRDs, everything else is a built-in kind
OPERATOR_GROUPS = {"flink.apache.org", "ray.io", "kafka.strimzi.io", "monitoring.coreos.com"}


def _is_custom(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in OPERATOR_GROUPS


needs_chart = pytest.mark.skipif(not CHART.is_dir(), reason="charts/ridecast is not in this checkout")


def _id(values: Path | None) -> str:
    return "values.yaml" if values is None else values.name


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def renders(settings: Settings) -> dict[str, list[dict]]:
    """``helm template`` of the chart per values file (hooks included; RayJob templates inside ConfigMaps too),
    with the CRDs' API versions announced when there is a CRD directory."""
    if not CHART.is_dir():
        pytest.skip("charts/ridecast is not in this checkout")
    apis = kv.crd_api_versions(settings.crd_dir) if settings.crd_dir and settings.crd_dir.is_dir() else []
    return {_id(v): kv.render(CHART, v, settings.validation.kubernetes_version, apis) for v in VALUES}


@pytest.fixture(scope="module")
def default_render(renders: dict[str, list[dict]]) -> list[dict]:
    return renders["values.yaml"]


def _all_docs(renders: dict[str, list[dict]]) -> list[tuple[str, dict]]:
    return [(name, d) for name, docs in renders.items() for d in docs]


# --------------------------------------------------------------------------------------------- helm, schemas

@needs_chart
@pytest.mark.parametrize("values", VALUES, ids=_id)
def test_helm_lint_strict(values: Path | None) -> None:
    kv.helm_lint(CHART, values)


@needs_chart
def test_values_schema_rejects_a_misspelt_value(tmp_path: Path) -> None:
    """values.schema.json must be closed: a typo in a values file fails `helm lint` instead of being ignored."""
    typo = tmp_path / "typo.yaml"
    typo.write_text("catalog:\n  nmae: other\n")
    with pytest.raises(kv.HelmError, match="nmae"):
        kv.helm_lint(CHART, typo)


K8S_MANIFESTS = sorted([*(ROOT / "k8s").rglob("*.yaml"), *(ROOT / "k8s").rglob("*.yml")])


@pytest.mark.skipif(not K8S_MANIFESTS, reason="k8s/ is not in this checkout")
def test_k8s_manifests_pass_kubernetes_validate_strict(settings: Settings) -> None:
    """What is applied outside the chart (namespace, RBAC); kind's cluster config is read by kind, not the API."""
    problems, seen = [], 0
    for path in K8S_MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or str(doc.get("apiVersion", "")).startswith("kind.x-k8s.io/"):
                continue
            seen += 1
            problems += [f"{path.relative_to(ROOT)}: {p}"
                         for p in kv.validate_builtin(doc, settings.validation.kubernetes_version)]
    assert not problems, _report(problems)
    assert seen, "k8s/ holds no Kubernetes object"


@pytest.mark.skipif(not (ROOT / "k8s" / "kind" / "cluster.yaml").is_file(), reason="k8s/kind is not in this checkout")
def test_kind_nodes_run_the_validated_kubernetes_minor(settings: Settings) -> None:
    """The manifests are validated for one Kubernetes version; the kind cluster the deploy workflow creates must
    run that minor, or the offline checks would vouch for a different API."""
    config = yaml.safe_load((ROOT / "k8s" / "kind" / "cluster.yaml").read_text())
    minor = ".".join(settings.validation.kubernetes_version.split(".")[:2])
    images = [n.get("image", "") for n in config.get("nodes") or []]
    assert images and all(re.search(rf":v{re.escape(minor)}\.\d+", i) for i in images), \
        f"kind node images {images} do not run Kubernetes {minor} (validation.kubernetes_version)"


@needs_chart
def test_every_operator_resource_is_rendered(renders: dict[str, list[dict]]) -> None:
    kinds = {d["kind"] for _, d in _all_docs(renders)}
    assert CUSTOM_KINDS <= kinds, f"custom resources the architecture needs but no values file renders: " \
                                  f"{sorted(CUSTOM_KINDS - kinds)}"


@needs_chart
def test_builtin_kinds_pass_kubernetes_validate_strict(renders: dict[str, list[dict]], settings: Settings) -> None:
    version = settings.validation.kubernetes_version
    problems = [f"{name}: {p}" for name, d in _all_docs(renders) if not _is_custom(d)
                for p in kv.validate_builtin(d, version)]
    assert not problems, _report(problems)


@needs_chart
def test_custom_resources_match_their_crd(renders: dict[str, list[dict]], crd_dir: Path) -> None:
    schemas = kv.load_crd_schemas(crd_dir)
    problems, seen = [], 0
    for name, d in _all_docs(renders):
        if _is_custom(d):
            key = (d["apiVersion"], d["kind"])
            if key not in schemas:
                problems.append(f"{name}: {d['kind']} {d['apiVersion']}: no CRD in {crd_dir} serves this version")
                continue
            seen += 1
            problems += [f"{name}: {p}" for p in kv.validate_custom_resource(d, schemas[key])]
    assert not problems, _report(problems)
    assert seen, "the chart renders no custom resource"


def _inject_targets(doc: dict) -> list[dict]:
    """Objects of a custom resource to put an unknown field into: its spec, and the first container of every
    pod template inside it."""
    targets = [doc["spec"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "containers" and isinstance(value, list) and value and isinstance(value[0], dict):
                    targets.append(value[0])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc["spec"])
    return targets


@needs_chart
def test_an_unknown_field_in_a_custom_resource_is_caught(renders: dict[str, list[dict]], crd_dir: Path) -> None:
    """The CRD check must be able to fail: a misspelt field anywhere closed (spec, a pod's container) is an error,
    as the API server's strict field validation makes it."""
    schemas = kv.load_crd_schemas(crd_dir)
    checked = 0
    for _, d in _all_docs(renders):
        if not _is_custom(d) or (d["apiVersion"], d["kind"]) not in schemas:
            continue
        for i in range(len(_inject_targets(d))):
            bad = copy.deepcopy(d)
            _inject_targets(bad)[i]["ridecastTypo"] = "x"
            errors = kv.validate_custom_resource(bad, schemas[(d["apiVersion"], d["kind"])])
            assert any("ridecastTypo" in e for e in errors), f"{d['kind']} target {i}: typo not caught: {errors}"
            checked += 1
    assert checked


def test_an_unknown_field_in_a_builtin_kind_is_caught(settings: Settings) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080, "ridecastTypo": 1}]}}
    assert any("ridecastTypo" in p for p in kv.validate_builtin(svc, settings.validation.kubernetes_version))


# --------------------------------------------------------------------------------------------- checkov

def _checkov_targets() -> list[tuple[str, str, Path]]:
    targets = [("chart", "helm", CHART), ("k8s", "kubernetes", ROOT / "k8s"),
               ("terraform", "terraform", ROOT / "terraform"), ("workflows", "github_actions", ROOT / ".github")]
    targets += [(f"dockerfile-{p.parent.name}", "dockerfile", p) for p in DOCKERFILES]
    return [(name, fw, p) for name, fw, p in targets]


@pytest.fixture(scope="module")
def rendered_dir(renders: dict[str, list[dict]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    for name, docs in renders.items():
        (out / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


def _assert_clean(result: kv.CheckovResult, target: Path) -> None:
    assert result.checks_run > 0, f"checkov ran no check on {target}: nothing it could read"
    assert result.parsing_errors == 0, f"checkov could not parse {result.parsing_errors} file(s) of {target}"
    if result.failed:
        lines = sorted({f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}" for c in result.failed})
        pytest.fail(f"{len(lines)} checkov finding(s) (fix, or skip in .checkov.yaml with a reason):\n"
                    + "\n".join(lines), pytrace=False)


@pytest.mark.parametrize(("framework", "target"), [(fw, p) for _, fw, p in _checkov_targets()],
                         ids=[n for n, _, _ in _checkov_targets()])
def test_checkov(framework: str, target: Path) -> None:
    if not target.exists():
        pytest.skip(f"{target.relative_to(ROOT)} is not in this checkout")
    _assert_clean(kv.checkov(target, framework), target)


@needs_chart
def test_checkov_rendered_manifests(rendered_dir: Path) -> None:
    _assert_clean(kv.checkov(rendered_dir, "kubernetes"), rendered_dir)


def test_every_checkov_skip_has_a_reason() -> None:
    config = ROOT / ".checkov.yaml"
    skips = yaml.safe_load(config.read_text()).get("skip-check") or []
    lines = config.read_text().splitlines()
    missing = []
    for check in skips:
        line = next((x for x in lines if re.match(rf"\s*-\s*{re.escape(str(check))}\b", x)), "")
        reason = line.partition("#")[2].strip()
        if len(reason) < 10:
            missing.append(str(check))
    assert not missing, f"skips in .checkov.yaml without a reason on their line: {missing}"


# --------------------------------------------------------------------------------------------- terraform, workflows

def test_terraform_fmt() -> None:
    if not (ROOT / "terraform").is_dir():
        pytest.skip("terraform/ is not in this checkout")
    try:
        terraform = kv.tool("terraform")
    except kv.ToolNotInstalledError as e:
        pytest.skip(str(e))
    out = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", "terraform"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, f"terraform fmt -check: files to reformat:\n{out.stdout}{out.stderr}"


needs_workflows = pytest.mark.skipif(not WORKFLOWS, reason=".github/workflows is not in this checkout")


def _workflow_schema(files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], cwd=ROOT, capture_output=True, text=True)


@needs_workflows
def test_workflows_match_the_github_schema() -> None:
    out = _workflow_schema(WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_schema_rejects_a_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs_on: ubuntu-latest\n    steps:\n      - run: echo hi\n")
    out = _workflow_schema([bad])
    assert out.returncode == 1 and "runs_on" in out.stdout, out.stdout + out.stderr


def _actionlint(files: list[Path]) -> subprocess.CompletedProcess:
    kv.tool("actionlint")
    return subprocess.run([str(kv.tool("node")), str(ROOT / "scripts" / "actionlint.cjs"), *map(str, files)],
                          cwd=ROOT, capture_output=True, text=True)


@needs_workflows
def test_actionlint() -> None:
    out = _actionlint(WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nope }}\n")
    out = _actionlint([bad])
    assert out.returncode == 1 and '"nope" is not defined' in out.stdout, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------- pods

def _containers(renders: dict[str, list[dict]]) -> list[tuple[str, kv.Container]]:
    return [(name, c) for name, docs in renders.items() for c in kv.workload_containers(docs)]


@needs_chart
def test_long_running_containers_have_probes(renders: dict[str, list[dict]]) -> None:
    # the Flink operator sets the JobManager/TaskManager probes itself; Ray's operator those of Ray nodes when the
    # chart leaves them out, so both count as probed when the container is the operator's main container
    problems = [f"{name}: {c.where}: no {probe}" for name, c in _containers(renders) if not c.is_batch
                and c.workload["kind"] != "FlinkDeployment"
                for probe in ("livenessProbe", "readinessProbe") if probe not in c.container]
    assert not problems, _report(problems)


@needs_chart
def test_containers_are_hardened(renders: dict[str, list[dict]]) -> None:
    problems = []
    for name, c in _containers(renders):
        sc, pod_sc = c.container.get("securityContext") or {}, c.pod_spec.get("securityContext") or {}

        def eff(key: str, sc: dict = sc, pod_sc: dict = pod_sc) -> object:
            return sc.get(key, pod_sc.get(key))

        where = f"{name}: {c.where}"
        if eff("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities do not drop ALL")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    assert not problems, _report(problems)


def _quantity_set(resources: dict, kind: str) -> bool:
    return all(k in (resources.get(kind) or {}) for k in ("cpu", "memory"))


@needs_chart
def test_containers_have_requests_and_limits(renders: dict[str, list[dict]]) -> None:
    problems = []
    for name, c in _containers(renders):
        resources = c.container.get("resources") or {}
        if c.workload["kind"] == "FlinkDeployment" and c.container.get("name") == "flink-main-container":
            spec = c.workload["spec"]  # the operator sizes its main containers from jobManager/taskManager
            if not all(_quantity_set({"limits": (spec.get(r) or {}).get("resource")}, "limits")
                       for r in ("jobManager", "taskManager")):
                problems.append(f"{name}: {c.where}: jobManager/taskManager resource (cpu, memory) missing")
            continue
        for kind in ("requests", "limits"):
            if not _quantity_set(resources, kind):
                problems.append(f"{name}: {c.where}: no cpu+memory {kind}")
    assert not problems, _report(problems)


@needs_chart
def test_images_are_pinned(renders: dict[str, list[dict]]) -> None:
    images = {(name, c.where, c.container.get("image", "")) for name, c in _containers(renders)
              if not (c.workload["kind"] == "FlinkDeployment" and c.container.get("name") == "flink-main-container")}
    # the operator gives Flink's main containers spec.image
    images |= {(name, f"{d['kind']}/{d['metadata']['name']}", d["spec"].get("image", ""))
               for name, d in _all_docs(renders) if d["kind"] == "FlinkDeployment"}
    problems = [f"{name}: {where}: {image!r}" for name, where, image in images
                if not image or "@sha256:" not in image and (
                    ":" not in image.rsplit("/", 1)[-1] or image.rsplit(":", 1)[1] in ("latest", ""))]
    assert not problems, "unpinned or latest images: " + _report(problems)


@needs_chart
def test_service_ports_reach_container_ports(renders: dict[str, list[dict]]) -> None:
    problems = []
    for name, docs in renders.items():
        templates = [(d, t) for d in docs if not kv.is_test_hook(d) for _, t in kv.pod_templates(d)]
        for svc in (d for d in docs if d["kind"] == "Service"):
            selector = svc["spec"].get("selector")
            if not selector:
                continue  # headless/external services select nothing on purpose
            where = f"{name}: Service/{svc['metadata']['name']}"
            pods = [t for _, t in templates if kv._selects({"matchLabels": selector},
                                                           (t.get("metadata") or {}).get("labels") or {})]
            if not pods:
                problems.append(f"{where}: selector {selector} matches no pod the chart renders")
                continue
            ports = {(p.get("name"), p["containerPort"]) for t in pods for c in t["spec"].get("containers") or []
                     for p in c.get("ports") or []}
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp["port"])
                if not any(target in (pname, number) for pname, number in ports):
                    problems.append(f"{where}: port {sp['port']} -> targetPort {target!r} is no container port "
                                    f"of the selected pods ({sorted(ports, key=str)})")
    assert not problems, _report(problems)


@needs_chart
def test_serving_autoscales(renders: dict[str, list[dict]]) -> None:
    for name, docs in renders.items():
        services = [d for d in docs if d["kind"] == "RayService"]
        assert services, f"{name}: no RayService"
        for rs in services:
            config = yaml.safe_load(rs["spec"]["serveConfigV2"])
            deployments = [d for app in config["applications"] for d in app.get("deployments") or []]
            assert deployments, f"{name}: serveConfigV2 names no deployment"
            for dep in deployments:
                auto = dep.get("autoscaling_config") or {}
                assert auto.get("min_replicas") is not None and auto.get("max_replicas", 0) >= 1, \
                    f"{name}: deployment {dep.get('name')} has no Serve autoscaling: {dep}"
                assert auto["max_replicas"] >= auto["min_replicas"]
            assert rs["spec"]["rayClusterConfig"].get("enableInTreeAutoscaling") is True, \
                f"{name}: Ray autoscaler off: Serve replicas beyond the first nodes would never get a node"


# --------------------------------------------------------------------------------------------- network policies

def _component_pods(docs: list[dict], component: str) -> list[kv.Pod]:
    pods = [p for p in kv.pods_of(docs) if p.label_dict.get("app.kubernetes.io/component") == component]
    assert pods, f"no pod labelled app.kubernetes.io/component={component}"
    return pods


def _service_port(docs: list[dict], component: str) -> int:
    for svc in docs:
        if svc["kind"] == "Service" and (svc["spec"].get("selector") or {}).get(
                "app.kubernetes.io/component") == component:
            port = svc["spec"]["ports"][0]
            target = port.get("targetPort", port["port"])
            if isinstance(target, int):
                return target
            return next(n for p in _component_pods(docs, component) for name, n in p.ports if name == target)
    raise AssertionError(f"no Service selects app.kubernetes.io/component={component}")


def test_network_policy_evaluator() -> None:
    """The evaluator itself: default-deny plus one allow rule, named ports, namespace selectors, egress."""
    web = kv.Pod("web", "a", (("app", "web"),))
    db = kv.Pod("db", "a", (("app", "db"),), (("pg", 5432),))
    other = kv.Pod("other", "b", (("app", "web"),))
    deny = kv.Policy("a", {"podSelector": {}, "policyTypes": ["Ingress"]})
    allow = kv.Policy("a", {"podSelector": {"matchLabels": {"app": "db"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                         "ports": [{"port": "pg"}]}]})
    assert kv.can_reach(web, db, 5432, [])
    assert not kv.can_reach(web, db, 5432, [deny])
    assert kv.can_reach(web, db, 5432, [deny, allow])
    assert not kv.can_reach(web, db, 5433, [deny, allow])
    assert not kv.can_reach(other, db, 5432, [deny, allow]), "a podSelector alone means the policy's namespace"
    egress = kv.Policy("a", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                             "egress": [{"to": [{"podSelector": {"matchExpressions": [
                                 {"key": "app", "operator": "In", "values": ["cache"]}]}}]}]})
    assert not kv.can_reach(web, db, 5432, [allow, egress])


@needs_chart
@pytest.mark.parametrize(("source", "target", "allowed"), [
    # who must talk (the architecture's data paths)
    ("serve", "redis", True),  # online feature store
    ("serve", "postgresql", True),  # Iceberg catalog (history, bootstrap of the store)
    ("serve", "minio", True),  # the warehouse's files
    ("serve", "mlflow", True),  # which model is champion
    ("feature-job", "postgresql", True),
    ("feature-job", "minio", True),  # Iceberg data files, checkpoints and savepoints
    ("train", "postgresql", True),
    ("train", "minio", True),
    ("train", "mlflow", True),
    ("trino-coordinator", "postgresql", True),
    ("trino-coordinator", "trino-worker", True),
    ("trino-worker", "trino-coordinator", True),
    ("trino-worker", "minio", True),
    ("mlflow", "postgresql", True),
    ("forecast", "postgresql", True),
    ("forecast", "mlflow", True),
    ("maintain", "postgresql", True),
    # who must not
    ("feature-job", "redis", False),
    ("unrelated", "postgresql", False),
    ("unrelated", "redis", False),
    ("unrelated", "minio", False),
    ("other-namespace", "postgresql", False),
    ("other-namespace", "redis", False),
    ("other-namespace", "minio", False),
    ("other-namespace", "mlflow", False),
])
def test_network_policies_let_only_what_must_talk_talk(default_render: list[dict], source: str, target: str,
                                                       allowed: bool) -> None:
    docs = default_render
    policies = kv.policies_of(docs)
    assert policies, "the chart renders no NetworkPolicy"
    if source == "unrelated":  # any other pod in the namespace, e.g. a debugging shell
        sources = [kv.Pod("unrelated", kv.NAMESPACE, (("app", "debug-shell"),))]
    elif source == "other-namespace":  # outside the namespace's egress rules: only the target's ingress decides
        sources = [kv.Pod("other", "default", (("app.kubernetes.io/component", "serve"),))]
    else:
        sources = _component_pods(docs, source)
    port = _service_port(docs, target)
    for src in sources:
        for dst in _component_pods(docs, target):
            assert kv.can_reach(src, dst, port, policies) is allowed, \
                f"{src.name} -> {dst.name}:{port} should be {'allowed' if allowed else 'denied'}"


# --------------------------------------------------------------------------------------------- wiring

def _jdbc_target(uri: str) -> tuple[str, int | None, str]:
    """(host, port, database) of a SQLAlchemy or JDBC URI, credentials and options ignored."""
    parts = urlsplit(uri.removeprefix("jdbc:"))
    return parts.hostname or "", parts.port, parts.path.lstrip("/")


def _trino_catalog(docs: list[dict]) -> dict[str, str]:
    for d in docs:
        if d["kind"] != "ConfigMap":
            continue
        for key, text in (d.get("data") or {}).items():
            if key.endswith(".properties") and re.search(r"^connector\.name\s*=\s*iceberg", text, re.M):
                return dict(line.split("=", 1) for line in (x.strip() for x in text.splitlines())
                            if line and not line.startswith("#") and "=" in line)
    raise AssertionError("no Trino catalog with connector.name=iceberg in any ConfigMap")


@needs_chart
def test_every_component_sees_the_same_catalog_warehouse_and_kafka(renders: dict[str, list[dict]]) -> None:
    """Trino, the Flink job, training (the RayJob template) and serving (the RayService) must name one catalog,
    one catalog database, one warehouse and one Kafka bootstrap: configuration alone wires them."""
    for name, docs in renders.items():
        seen: dict[str, dict[str, set]] = {}
        groups = {"flink": ("FlinkDeployment",), "training": ("RayJob",), "serving": ("RayService",)}
        for group, kinds in groups.items():
            found = {"catalog": set(), "uri": set(), "warehouse": set(), "kafka": set()}
            for c in kv.workload_containers(d for d in docs if d["kind"] in kinds):
                env = kv.container_env(c.container, docs)
                for key, var in (("catalog", "RIDECAST_CATALOG__NAME"), ("warehouse", "RIDECAST_CATALOG__WAREHOUSE"),
                                 ("kafka", "RIDECAST_KAFKA__BOOTSTRAP_SERVERS")):
                    if var in env:
                        found[key].add(env[var].rstrip("/"))
                if "RIDECAST_CATALOG__URI" in env:
                    found["uri"].add(_jdbc_target(env["RIDECAST_CATALOG__URI"]))
            seen[group] = found
        trino = _trino_catalog(docs)
        seen["trino"] = {
            "catalog": {trino.get("iceberg.jdbc-catalog.catalog-name")},
            "uri": {_jdbc_target(trino.get("iceberg.jdbc-catalog.connection-url", ""))},
            "warehouse": {trino.get("iceberg.jdbc-catalog.default-warehouse-dir", "").rstrip("/")},
            "kafka": set(),
        }
        for key in ("catalog", "uri", "warehouse", "kafka"):
            needed = ["trino", "flink", "training", "serving"] if key != "kafka" else ["flink", "serving"]
            for group in needed:
                assert len(seen[group][key]) == 1 and None not in seen[group][key], \
                    f"{name}: {group} sees {key} = {seen[group][key] or 'nothing'}"
            values = {v for group in needed for v in seen[group][key]}
            assert len(values) == 1, f"{name}: components disagree on {key}: " + \
                ", ".join(f"{g}={seen[g][key]}" for g in needed)


def test_the_pinned_tools_are_installed(settings: Settings) -> None:
    """bootstrap's helm and kubectl are the pinned ones (npm lock), kubectl of the validated Kubernetes minor."""
    helm = subprocess.run([kv.tool("helm"), "version", "--short"], capture_output=True, text=True, check=True)
    assert helm.stdout.startswith("v3.18.0"), helm.stdout
    kubectl = subprocess.run([kv.tool("kubectl"), "version", "--client", "-o", "json"], capture_output=True,
                             text=True, check=True)
    minor = settings.validation.kubernetes_version.split(".")[1]
    assert yaml.safe_load(kubectl.stdout)["clientVersion"]["minor"] == minor, kubectl.stdout


# Only the pods that call the Kubernetes API get a token: the retrain CronJob (it creates RayJobs) and the Flink
# pods (native mode: the JobManager creates TaskManager pods). This is what lets .checkov.yaml skip CKV_K8S_38
# globally without hiding a new pod that mounts a token it does not need.
TOKEN_USERS = {("CronJob", "retrain"), ("FlinkDeployment", "feature-job")}


@needs_chart
def test_only_api_callers_mount_a_service_account_token(renders: dict[str, list[dict]]) -> None:
    problems = []
    for name, docs in renders.items():
        sa_mounts = {d["metadata"]["name"]: d.get("automountServiceAccountToken", True)
                     for d in docs if d.get("kind") == "ServiceAccount"}
        for doc in docs:
            bare = doc.get("kind") == "Pod"
            templates = [("pod", {"spec": doc.get("spec") or {}})] if bare else kv.pod_templates(doc)
            component = ((doc.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component", "")
            for label, template in templates:
                spec = template.get("spec") or {}
                mounted = spec.get("automountServiceAccountToken",
                                   sa_mounts.get(spec.get("serviceAccountName", "default"), True))
                if mounted and (doc.get("kind"), component) not in TOKEN_USERS:
                    problems.append(f"{name}: {doc.get('kind')}/{doc['metadata']['name']}/{label} mounts a token")
    assert not problems, _report(problems)


# --------------------------------------------------------------------------------------------- issue 10's gaps:
# the separate feed, the Flink restart strategy from settings, Ray's /dev/shm

def _render_with(tmp_path: Path, settings: Settings, values: dict) -> list[dict]:
    """The chart with values.yaml plus ``values`` (a values file, as a user's ``-f`` would give them)."""
    path = tmp_path / "extra-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return kv.render(CHART, path, settings.validation.kubernetes_version)


def _settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``ridecast.config.Settings`` as the container's process builds it from its environment (and nothing else)."""
    import os

    for key in [k for k in os.environ if k.startswith("RIDECAST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RIDECAST_CONFIG", "/nonexistent/ridecast.toml")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _containers_of(docs: list[dict], kind: str, component: str) -> list[kv.Container]:
    return [c for c in kv.workload_containers(docs) if c.workload["kind"] == kind and not c.init
            and ((c.workload["metadata"].get("labels") or {}).get("app.kubernetes.io/component")) == component]


@needs_chart
def test_a_feed_deployment_feeds_redis_and_the_replicas_only_read(renders: dict[str, list[dict]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One Deployment runs `python -m serve --feed` with serving's own configuration (same ConfigMap, same
    Secret-backed Redis and catalog URIs, same Kafka group, committed offsets), and the serving replicas, built
    from the same ConfigMap, resolve serving.run_feed to false: one feed writes Redis."""
    for name, docs in renders.items():
        feeds = [d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["labels"].get("app.kubernetes.io/component") == "feed"]
        assert len(feeds) == 1, f"{name}: {len(feeds)} feed Deployments"
        spec = feeds[0]["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", f"{name}: more than one feed"
        (feed,) = _containers_of(docs, "Deployment", "feed")
        assert feed.container["command"] == ["python", "-m", "serve", "--feed"], name
        for probe, extra in (("livenessProbe", []), ("readinessProbe", ["--ready"])):
            assert feed.container[probe]["exec"]["command"] == [
                "python", "/opt/ridecast/bin/healthcheck.py", *extra], f"{name}: {probe}"
        feed_env = kv.container_env(feed.container, docs)
        serving = _containers_of(docs, "RayService", "serve")
        assert serving, f"{name}: no serving container"
        for c in serving:
            env = kv.container_env(c.container, docs)
            shared = {k: v for k, v in env.items() if k.startswith("RIDECAST_")}
            assert {k: feed_env.get(k) for k in shared} == shared, f"{name}: the feed's settings differ from {c.where}"
            assert _settings_from_env(env, monkeypatch).serving.run_feed is False, f"{name}: {c.where} feeds too"
        s = _settings_from_env(feed_env, monkeypatch)
        assert s.serving.backend == "redis" and s.serving.redis_url, f"{name}: the feed has no Redis URL"
        assert s.catalog.uri and s.catalog.uri.startswith("postgresql"), f"{name}: the feed cannot bootstrap"
        checks = yaml.safe_load((CHART / "values.yaml").read_text())["serving"]["feed"]["checkS"]
        assert s.serving.feed_check_s == checks, f"{name}: the feed's broker check is not the chart's"


@needs_chart
def test_the_feed_reaches_kafka_redis_and_the_lake_only(default_render: list[dict]) -> None:
    docs = default_render
    policies = kv.policies_of(docs)
    (feed,) = _component_pods(docs, "feed")
    for target in ("redis", "postgresql", "minio"):
        port = _service_port(docs, target)
        assert all(kv.can_reach(feed, dst, port, policies) for dst in _component_pods(docs, target)), target
    for target in ("mlflow", "trino-coordinator"):
        port = _service_port(docs, target)
        assert not any(kv.can_reach(feed, dst, port, policies) for dst in _component_pods(docs, target)), target
    # Strimzi's broker pods are the operator's, not rendered: one with their cluster label stands in
    kafka = kv.Pod("kafka", kv.NAMESPACE, (("strimzi.io/cluster", kv.RELEASE),), (("tcp-clients", 9092),))
    assert kv.can_reach(feed, kafka, 9092, policies)
    stranger = kv.Pod("unrelated", kv.NAMESPACE, (("app", "debug-shell"),))
    assert not kv.can_reach(stranger, kafka, 9092, policies)


@needs_chart
def test_the_feed_and_feeding_replicas_are_exclusive(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(kv.HelmError, match="set serving.runFeed to false"):
        _render_with(tmp_path, settings, {"serving": {"runFeed": True}})
    docs = _render_with(tmp_path, settings, {"serving": {"runFeed": True, "feed": {"enabled": False}}})
    assert not any(d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-feed") for d in docs)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"))
    assert config["data"]["RIDECAST_SERVING__RUN_FEED"] == "true"


@needs_chart
@pytest.mark.parametrize(("restart", "expected"), [
    ({"attempts": 7, "delayS": 33},
     {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "7",
      "restart-strategy.fixed-delay.delay": "33 s"}),
    ({"strategy": "exponential-delay", "attempts": 7, "delayS": 3, "maxDelayS": 90},
     {"restart-strategy.type": "exponential-delay", "restart-strategy.exponential-delay.initial-backoff": "3 s",
      "restart-strategy.exponential-delay.max-backoff": "90 s",
      "restart-strategy.exponential-delay.attempts-before-reset-backoff": "7"}),
], ids=["fixed-delay", "exponential-delay"])
def test_the_flink_restart_strategy_comes_from_values_through_the_job_settings(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, restart: dict, expected: dict) -> None:
    """flink.restart reaches the FlinkDeployment's environment (ridecast-config), from which the init container
    renders the job spec; the job's own configuration (which wins over the cluster's) then carries it, and the
    cluster's copy says the same, key for key."""
    from flink_jobs.zone_features import flink_conf
    from ridecast.stack.pipeline import job_spec

    docs = _render_with(tmp_path, settings, {"flink": {"restart": restart}})
    (fd,) = [d for d in docs if d["kind"] == "FlinkDeployment"]
    init = [c for c in kv.workload_containers([fd]) if c.init and c.container["name"] == "job-spec"]
    assert init, "no job-spec init container"
    env = kv.container_env(init[0].container, docs)
    assert (env["RIDECAST_FLINK__RESTART_ATTEMPTS"], env["RIDECAST_FLINK__RESTART_DELAY_S"]) == (
        str(restart["attempts"]), str(restart["delayS"]))
    conf = flink_conf(job_spec(_settings_from_env(env, monkeypatch), "stream", jars=[], checkpoint_dir="s3://b/c"))
    assert {k: v for k, v in conf.items() if k.startswith("restart-strategy.")} == expected
    cluster = fd["spec"]["flinkConfiguration"]
    assert {k: v for k, v in cluster.items() if k.startswith("restart-strategy.")} == expected


@needs_chart
@pytest.mark.parametrize(("main_loop", "ingress"), [(True, "proxy"), (False, "haproxy")])
def test_serve_knobs_in_the_ray_containers_are_the_settings_ray_serve_env_gives(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, main_loop: bool, ingress: str) -> None:
    """serving.mainLoop and serving.ingress reach the settings (ridecast-config) and, as the Ray Serve variables
    the local ``python -m serve`` sets from those settings (``ray_serve_env``), every Ray container of the
    RayService: the thread knobs, the HAProxy switch, and direct ingress on exactly when HAProxy routes to it."""
    from serve._deployment import ray_serve_env

    docs = _render_with(tmp_path, settings, {"serving": {"mainLoop": main_loop, "ingress": ingress}})
    serving = _containers_of(docs, "RayService", "serve")
    assert {c.container["name"] for c in serving} == {"ray-head", "ray-worker"}
    for c in serving:
        env = kv.container_env(c.container, docs)
        s = _settings_from_env(env, monkeypatch)
        assert (s.serving.main_loop, s.serving.ingress) == (main_loop, ingress), c.where
        assert s.serving.direct_ingress is (ingress == "haproxy"), c.where
        want = {k: v for k, v in ray_serve_env(s).items()
                if k.startswith("RAY_SERVE_RUN_") or k == "RAY_SERVE_ENABLE_HA_PROXY"}
        assert len(want) == 3 and {k: env.get(k) for k in want} == want, c.where


def _shm(container: kv.Container) -> dict | None:
    """The emptyDir mounted at /dev/shm in this container, if any."""
    names = [m["name"] for m in container.container.get("volumeMounts") or [] if m["mountPath"] == "/dev/shm"]
    vols = {v["name"]: v for v in container.pod_spec.get("volumes") or []}
    return (vols.get(names[0]) or {}).get("emptyDir") if names else None


@needs_chart
def test_every_ray_container_has_a_memory_backed_dev_shm_sized_by_values(
        renders: dict[str, list[dict]], tmp_path: Path, settings: Settings) -> None:
    """Ray's object store lives in /dev/shm; a container's default is 64 MiB. Every Ray node the chart renders
    (RayService head and workers, the RayJob template's head and workers) mounts a memory-backed emptyDir there,
    of the size its group's values say."""
    sizes = {"serving": {"head": {"shmSize": "1536Mi"}, "workers": {"shmSize": "3Gi"}},
             "training": {"rayJob": {"head": {"shmSize": "768Mi"}, "workers": {"shmSize": "2Gi"}}}}
    want = {("RayService", "head"): "1536Mi", ("RayService", "worker"): "3Gi",
            ("RayJob", "head"): "768Mi", ("RayJob", "worker"): "2Gi"}
    for name, docs in [*renders.items(), ("custom", _render_with(tmp_path, settings, sizes))]:
        seen = set()
        for c in kv.workload_containers(d for d in docs if d["kind"] in ("RayService", "RayJob")):
            if c.init or c.container["name"] not in ("ray-head", "ray-worker"):
                continue
            role = "head" if c.container["name"] == "ray-head" else "worker"
            shm = _shm(c)
            assert shm and shm.get("medium") == "Memory", f"{name}: {c.where}: no memory-backed /dev/shm: {shm}"
            if name == "custom":
                assert shm.get("sizeLimit") == want[(c.workload["kind"], role)], f"{c.where}: {shm}"
            else:
                assert shm.get("sizeLimit"), f"{name}: {c.where}: /dev/shm without a sizeLimit"
            seen.add((c.workload["kind"], role))
        assert seen == set(want), f"{name}: Ray containers found: {sorted(seen)}"
