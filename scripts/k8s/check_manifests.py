#!/usr/bin/env python3
"""Checks on the rendered overlays that kubernetes-validate and checkov cannot make.

    check_manifests.py RENDERED_DIR K8S_DIR

RENDERED_DIR holds one `<overlay>.yaml` per overlay (`kubectl kustomize` output); K8S_DIR is the
source tree (for the prometheus-adapter rule files). Checks:

- Custom resources against their published schemas: KEDA's ScaledObject and the Prometheus
  Operator's ServiceMonitor are validated with the cloudcoil models generated from those projects'
  CRDs (required fields, types, enums), plus a strict walk that rejects any field the CRD does not
  define (the models themselves ignore unknown fields), plus the fields each operator needs to do
  anything (a Prometheus trigger's serverAddress, query and threshold; an endpoint's port).
- References inside one overlay resolve: the ScaledObject's and HPAs' target Deployment exists and
  no Deployment has two autoscalers; the ServiceMonitor selects a Service that has its port; every
  Service selects pods and targets a named container port; probes use named ports that exist.
- Every container (init containers included) that has `args` has a `command`: the ACI provider
  behind virtual nodes refuses `args` without `command` ("ACI does not support providing args
  without specifying the command"), and a pod already bound to the virtual node never reschedules.
  Doorbuster containers' `command` is the Dockerfile's ENTRYPOINT.
- Doorbuster containers use a tagged image; the grace period outlasts the drain.
- A storefront that may run on a virtual node (it tolerates the virtual-kubelet taint) keeps its
  SQLite file where the image's user can write on ACI's terms: the provider passes no
  securityContext or fsGroup, so a volume mounted over the database's folder is root-owned 0755
  there, and with a read-only root filesystem on VM nodes nothing else would be writable.
- The Grafana dashboard ConfigMap is labelled for the sidecar, is valid JSON, and its `kube_*`
  metrics are ones kube-state-metrics exports; a query that counts pods with kube_pod_info counts
  Running ones only; a folder annotation comes with the Helm settings in docs/DEPLOY-AKS.md that
  make the sidecar honour it. Every other metric (and every label) that the dashboard, the KEDA
  query and the adapter rules name must be on a running shop's /metrics: the Rust test
  `manifests::every_metric_and_label_the_manifests_query_is_exported` checks that against the
  real binary (so no cAdvisor series either: nothing for ACI pods), reading the same files.
- The adapter rule in adapter-config.yaml and in adapter-values.yaml is the same rule.
- What README.md and docs/*.md say the demo overlay sets is what the rendered `aks-demo`
  overlay sets: every sentence or table row of the form "`VAR` … the demo overlay uses `VALUE`"
  (or "the `aks-demo` overlay uses", or "the demo uses (`VAR=VALUE`)") is read from the docs and
  compared with the storefront container's env in the rendering.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path

import pydantic
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

# kube-state-metrics series the dashboard joins the shop's metrics with. (The shop's own metrics are
# checked against a running shop by tests/it/manifests.rs, not listed here.)
CLUSTER_METRICS = {
    "kube_pod_info",
    "kube_node_info",
    "kube_node_labels",
    "kube_pod_status_phase",
    "kube_deployment_status_replicas_ready",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    # No cAdvisor series (container_cpu_usage_seconds_total…): the kubelet has none for pods on a
    # virtual node, so a panel built on them goes blind exactly when the burst happens.
}
# PromQL words that look like metric names but are functions, keywords or label names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "on", "without",
    "group_left", "group_right", "unless", "or", "and", "ignoring", "histogram_quantile", "vector",
    "le", "bool", "offset", "label_values", "namespace", "pod", "node", "topk", "abs",
}
# The drain takes DOORBUSTER_DRAIN_DELAY + DOORBUSTER_REQUEST_TIMEOUT (their defaults when unset).
DEFAULT_DRAIN_DELAY_S = 5
DEFAULT_REQUEST_TIMEOUT_S = 10

problems: list[str] = []
DEPLOY_GUIDE: Path | None = None


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def load_overlays(rendered: Path) -> dict[str, list[dict]]:
    overlays = {}
    for path in sorted(rendered.glob("*.yaml")):
        overlays[path.stem] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if not overlays:
        sys.exit(f"no rendered overlays in {rendered}")
    return overlays


# ---- strict schema walk ------------------------------------------------------------------------


def _models(annotation) -> list[type[pydantic.BaseModel]]:
    """The pydantic model classes a field annotation can hold (through Optional, Annotated...)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def unknown_fields(annotation, value, path: str) -> list[str]:
    """Paths in `value` that the model behind `annotation` does not define."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return unknown_fields(args[0], value, path)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        found = [unknown_fields(a, value, path) for a in args if a is not type(None)]
        return min(found, key=len) if found else []
    if origin in (list, typing.List) and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in unknown_fields(args[0], item, f"{path}[{i}]")]
    if origin in (dict, typing.Dict) and isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_fields(args[1], v, f"{path}.{k}")]
    models = _models(annotation)
    if not models or not isinstance(value, dict):
        return []
    model = models[0]
    if model.model_config.get("extra") == "allow":
        return []
    fields = {}
    for name, field in model.model_fields.items():
        fields[field.alias or name] = field.annotation
    out = []
    for key, item in value.items():
        if key not in fields:
            out.append(f"{path}.{key}")
        else:
            out.extend(unknown_fields(fields[key], item, f"{path}.{key}"))
    return out


def check_schema(where: str, model: type[pydantic.BaseModel], doc: dict) -> None:
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as error:
        for e in error.errors():
            problem(where, f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
    for path in unknown_fields(model, {k: v for k, v in doc.items() if k != "status"}, ""):
        problem(where, f"field {path.lstrip('.')} is not in the {doc['kind']} schema")


# ---- helpers -----------------------------------------------------------------------------------


def name(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_labels(doc: dict) -> dict:
    return doc["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def seconds(value: str | None, default: float) -> float:
    if value is None:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value.strip())
    if not match:
        return default
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers not followed by `(`, not in braces)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_selectors = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_selectors)
    # Label lists after by/on/without/group_left(...) are label names, not metrics.
    without_labels = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", without_ranges)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_labels))
    return {n for n in names if n not in PROMQL_WORDS and not n.startswith("__") and not re.fullmatch(r"\d.*", n)}


# ---- checks ------------------------------------------------------------------------------------


def all_containers(spec: dict) -> list[tuple[str, dict]]:
    """(kind, container) for the containers, init containers and ephemeral containers of a pod."""
    return [
        (kind, c)
        for kind in ("containers", "initContainers", "ephemeralContainers")
        for c in spec.get(kind) or []
    ]


def dockerfile_entrypoint(dockerfile: Path) -> list[str] | None:
    """The exec-form ENTRYPOINT of the Dockerfile's last stage (None if there is none)."""
    entrypoint = None
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*ENTRYPOINT\s+(\[.*\])\s*$", line, re.IGNORECASE)
        if match:
            entrypoint = json.loads(match.group(1))
        elif re.match(r"\s*FROM\s", line, re.IGNORECASE):
            entrypoint = None
    return entrypoint


def check_commands(overlay: str, workloads: list[dict], entrypoint: list[str] | None) -> None:
    for w in workloads:
        for kind, c in all_containers(pod_spec(w)):
            where = f"{overlay}: {name(w)} {kind[:-1]} {c['name']}"
            if c.get("args") and not c.get("command"):
                problem(where, "has args but no command: the ACI provider behind virtual nodes refuses "
                        "it (\"ACI does not support providing args without specifying the command\") "
                        "and the pod never starts there; spell out the image's entrypoint as command")
            if re.fullmatch(r"([^/]+/)*doorbuster(:[^/@]+)?(@sha256:[0-9a-f]+)?", c.get("image", "")):
                if entrypoint is None:
                    problem(where, "the Dockerfile has no exec-form ENTRYPOINT to compare command with")
                elif c.get("command") and c["command"] != entrypoint:
                    problem(where, f"command {c.get('command')!r} is not the image's ENTRYPOINT {entrypoint!r}")


# The image's own DATABASE_URL (Dockerfile ENV), used when a container sets none.
IMAGE_DATABASE_URL = "sqlite:///data/doorbuster.db"
VIRTUAL_KUBELET_TAINT = "virtual-kubelet.io/provider"


def tolerates_virtual_node(spec: dict) -> bool:
    return any(t.get("key") == VIRTUAL_KUBELET_TAINT or (t.get("operator") == "Exists" and not t.get("key"))
               for t in spec.get("tolerations") or [])


def check_virtual_node_storage(overlay: str, workloads: list[dict]) -> None:
    for w in workloads:
        spec = pod_spec(w)
        if not tolerates_virtual_node(spec):
            continue
        for c in spec["containers"]:
            if not re.fullmatch(r"([^/]+/)*doorbuster(:[^/@]+)?(@sha256:[0-9a-f]+)?", c.get("image", "")):
                continue
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            url = env.get("DATABASE_URL", IMAGE_DATABASE_URL) or ""
            if not url.startswith("sqlite:") or ":memory:" in url:
                continue
            path = url.removeprefix("sqlite:").removeprefix("//").split("?")[0]
            folder = path.rsplit("/", 1)[0] if "/" in path else "."
            where = f"{overlay}: {name(w)} container {c['name']}"
            for mount in c.get("volumeMounts", []):
                mount_path = mount["mountPath"].rstrip("/")
                if folder == mount_path or folder.startswith(mount_path + "/"):
                    problem(where, f"may run on a virtual node, where volume {mount['name']!r} at {mount['mountPath']} is "
                            f"a root-owned 0755 folder (ACI ignores fsGroup): the SQLite file {path} cannot be created there")
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                problem(where, "may run on a virtual node but has a read-only root filesystem: on a VM node the "
                        f"SQLite folder {folder} must then be a volume, which ACI would make root-owned")


def check_overlay(overlay: str, docs: list[dict], entrypoint: list[str] | None) -> None:
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    services = by_kind.get("Service", [])
    workloads = [d for d in docs if pod_spec(d) is not None]
    check_commands(overlay, workloads, entrypoint)
    check_virtual_node_storage(overlay, workloads)

    # Autoscalers: each target exists, and each Deployment has at most one.
    targets: dict[str, list[str]] = {}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        targets.setdefault(ref["name"], []).append(name(hpa))
    for so in by_kind.get("ScaledObject", []):
        where = f"{overlay}: {name(so)}"
        check_schema(where, ScaledObject, so)
        spec = so.get("spec", {})
        ref = spec.get("scaleTargetRef", {})
        if ref.get("kind", "Deployment") == "Deployment":
            targets.setdefault(ref.get("name", ""), []).append(name(so))
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problem(where, "minReplicaCount is above maxReplicaCount")
        for i, trigger in enumerate(spec.get("triggers", [])):
            meta = trigger.get("metadata", {})
            if trigger.get("type") == "prometheus":
                for key in ("serverAddress", "query", "threshold"):
                    if not meta.get(key):
                        problem(where, f"triggers[{i}]: the Prometheus scaler needs metadata.{key}")
                try:
                    float(meta.get("threshold", "x"))
                except ValueError:
                    problem(where, f"triggers[{i}]: threshold must be a number in a string")
            if "authenticationRef" in trigger and not by_kind.get("TriggerAuthentication"):
                problem(where, f"triggers[{i}]: authenticationRef without a TriggerAuthentication")
    for target, scalers in targets.items():
        if target not in deployments:
            problem(overlay, f"{', '.join(scalers)} scale Deployment {target!r}, which is not in the overlay")
        if len(scalers) > 1:
            problem(overlay, f"Deployment {target} has more than one autoscaler: {', '.join(scalers)}")

    # ServiceMonitors select a Service with the named port.
    for sm in by_kind.get("ServiceMonitor", []):
        where = f"{overlay}: {name(sm)}"
        check_schema(where, ServiceMonitor, sm)
        selector = sm.get("spec", {}).get("selector", {}).get("matchLabels", {})
        matched = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
        if not matched:
            problem(where, f"selects no Service (matchLabels {selector})")
        for i, endpoint in enumerate(sm.get("spec", {}).get("endpoints", [])):
            if not endpoint.get("port") and not endpoint.get("targetPort"):
                problem(where, f"endpoints[{i}] names no port")
            for svc in matched:
                if endpoint.get("port") and endpoint["port"] not in {p.get("name") for p in svc["spec"]["ports"]}:
                    problem(where, f"endpoints[{i}]: {name(svc)} has no port named {endpoint['port']!r}")

    # Services select pods, and target ports those pods declare.
    for svc in services:
        selector = svc["spec"].get("selector", {})
        pods = [w for w in workloads if selects(selector, pod_labels(w))]
        if not pods:
            problem(overlay, f"{name(svc)} selects no pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for w in pods:
                declared = {p.get("name") for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
                numbers = {p["containerPort"] for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
                if target not in declared and target not in numbers:
                    problem(overlay, f"{name(svc)} port {port['port']} targets {target!r}, which {name(w)} does not declare")

    for w in workloads:
        spec = pod_spec(w)
        for c in spec["containers"]:
            where = f"{overlay}: {name(w)} container {c['name']}"
            image = c.get("image", "")
            if re.fullmatch(r"([^/]+/)*doorbuster", image):
                problem(where, f"image {image!r} has no tag: list components/image after the component that adds it")
            port_names = {p.get("name") for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    problem(where, f"{probe} uses port {port!r}, which the container does not name")
            if image.split("/")[-1].startswith("doorbuster") and "serve" in c.get("args", ["serve"]):
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                drain = seconds(env.get("DOORBUSTER_DRAIN_DELAY"), DEFAULT_DRAIN_DELAY_S)
                timeout = seconds(env.get("DOORBUSTER_REQUEST_TIMEOUT"), DEFAULT_REQUEST_TIMEOUT_S)
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= drain + timeout:
                    problem(where, f"terminationGracePeriodSeconds {grace} does not outlast the drain ({drain:g}s + {timeout:g}s)")

    # The Grafana dashboard.
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") is None:
            continue
        where = f"{overlay}: {name(cm)}"
        if cm["metadata"]["labels"]["grafana_dashboard"] != "1":
            problem(where, 'the Grafana sidecar looks for the label grafana_dashboard: "1"')
        for key, text in cm.get("data", {}).items():
            try:
                dashboard = json.loads(text)
            except json.JSONDecodeError as error:
                problem(where, f"{key} is not JSON: {error}")
                continue
            exprs = [t["expr"] for p in dashboard.get("panels", []) for t in p.get("targets", [])]
            if not exprs:
                problem(where, f"{key} has no queries")
            for expr in exprs:
                for metric in promql_metrics(expr):
                    if metric.startswith("kube_") and metric not in CLUSTER_METRICS:
                        problem(where, f"{key}: {metric} is not a kube-state-metrics series in {expr}")
                if "kube_pod_info" in expr and not re.search(r'kube_pod_status_phase\{[^}]*phase="Running"', expr):
                    problem(where, f"{key}: counts pods without keeping Running ones (Pending and ProviderFailed "
                            f"pods on a virtual node would count): {expr[:120]}")
        folder = cm["metadata"].get("annotations", {}).get("grafana_folder")
        guide = DEPLOY_GUIDE.read_text() if DEPLOY_GUIDE and DEPLOY_GUIDE.exists() else ""
        if folder and not ("sidecar.dashboards.folderAnnotation=grafana_folder" in guide
                           and "sidecar.dashboards.provider.foldersFromFilesStructure=true" in guide):
            problem(where, "the grafana_folder annotation needs the chart's sidecar.dashboards.folderAnnotation and "
                    "sidecar.dashboards.provider.foldersFromFilesStructure=true in docs/DEPLOY-AKS.md's helm "
                    "command, or the dashboard lands in General")


def check_adapter_rules(k8s: Path) -> None:
    folder = k8s / "components" / "rps-prometheus-adapter"
    config = yaml.safe_load((folder / "adapter-config.yaml").read_text())["rules"]
    values = yaml.safe_load((folder / "adapter-values.yaml").read_text())["rules"]["custom"]
    if config != values:
        problem(str(folder), "adapter-config.yaml and adapter-values.yaml define different rules")


# "the demo overlay uses `X`", "the `aks-demo` overlay uses `X`", "the setting the demo uses (`X`)".
DEMO_CLAIM = re.compile(r"the\s+(?:`aks-demo`\s+overlay|demo\s+overlay|demo)\s+(?:uses|sets)\s*\(?\s*`([^`]+)`")
ENV_NAME = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")


def doc_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each paragraph and each table row, code blocks left out."""
    blocks, current, start, fenced = [], [], 0, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            line = ""
        if fenced or not line.strip() or line.lstrip().startswith("|"):
            if current:
                blocks.append((start, " ".join(current)))
                current = []
            if not fenced and line.lstrip().startswith("|"):
                blocks.append((number, line))
            continue
        if not current:
            start = number
        current.append(line.strip())
    if current:
        blocks.append((start, " ".join(current)))
    return blocks


def demo_claims(doc: Path) -> list[tuple[str, str, str]]:
    """(where, variable, value) for each thing the doc says the demo overlay sets."""
    claims = []
    for line, block in doc_blocks(doc.read_text()):
        for match in DEMO_CLAIM.finditer(block):
            where = f"{doc.name}:{line}"
            value = match.group(1)
            if "=" in value:
                var, value = value.split("=", 1)
            else:
                # The variable the sentence is about: the last one named before the claim.
                names = ENV_NAME.findall(block[: match.start()])
                if not names:
                    problem(where, f"says the demo uses `{value}` but names no variable before it")
                    continue
                var = names[-1]
            claims.append((where, var, value))
    return claims


def same_value(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def check_demo_docs(root: Path, overlays: dict[str, list[dict]]) -> int:
    """Compares what the docs say the aks-demo overlay sets with its rendering; returns the count."""
    deployment = next((d for d in overlays.get("aks-demo", []) if name(d) == "Deployment/doorbuster"), None)
    if deployment is None:
        problem("aks-demo", "no Deployment/doorbuster in the rendering to compare the docs with")
        return 0
    container = next(c for c in pod_spec(deployment)["containers"] if c["name"] == "doorbuster")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    claims = [claim for doc in docs for claim in demo_claims(doc)]
    if not claims:
        problem("docs", "no sentence says what the demo overlay sets (\"the demo overlay uses `VALUE`\"): "
                "the docs changed their wording; update DEMO_CLAIM in scripts/k8s/check_manifests.py")
    for where, var, value in claims:
        if var not in env:
            problem(where, f"says the aks-demo overlay sets {var}={value}, but the rendered overlay does not set {var}")
        elif not same_value(env[var], value):
            problem(where, f"says the aks-demo overlay sets {var}={value}, but the rendered overlay sets {var}={env[var]}")
    return len(claims)


def main() -> int:
    rendered, k8s = Path(sys.argv[1]), Path(sys.argv[2])
    root = k8s.resolve().parent
    global DEPLOY_GUIDE
    DEPLOY_GUIDE = root / "docs" / "DEPLOY-AKS.md"
    overlays = load_overlays(rendered)
    entrypoint = dockerfile_entrypoint(root / "Dockerfile")
    for overlay, docs in overlays.items():
        check_overlay(overlay, docs, entrypoint)
    check_adapter_rules(k8s)
    claims = check_demo_docs(root, overlays)
    kinds = sorted({d["kind"] for docs in overlays.values() for d in docs})
    if problems:
        print("\n".join(problems))
        print(f"check_manifests: {len(problems)} problem(s) in {len(overlays)} overlays")
        return 1
    print(f"check_manifests: {len(overlays)} overlays, kinds {', '.join(kinds)}; "
          f"{claims} statements in the docs about the demo overlay's settings: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
