"""What tests/docker.rs checks in k8s/ beyond schema validity (kubernetes-validate
does that): the promises of the examples, which a schema cannot see.

    python3 tests/docker/check_k8s.py k8s

Prints the resource files named by kustomization.yaml, one per line, and exits 0;
or prints every problem found to stderr and exits 1. Needs PyYAML, which
kubernetes-validate installs.
"""

import os
import pathlib
import sys

import yaml

# The Prometheus Operator's kinds are CRDs, which kubernetes-validate has no
# schema for. cloudcoil-models-prometheus-operator (PyPI, pinned in .ci/run) has
# pydantic models generated from the operator's CRD OpenAPI schemas (operator
# 0.80): types, patterns, required fields. Unknown fields are found by
# comparing the input with what the model kept.
try:
    from cloudcoil.models.prometheus_operator import v1 as operator_v1
except ImportError:  # pragma: no cover - depends on the machine
    operator_v1 = None
CRD_MODELS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")

SKEWGUARD_IMAGE = "skewguard"  # kustomization.yaml's `images:` rewrites this name


def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def http_path(probe):
    return ((probe or {}).get("httpGet") or {}).get("path")


# Series the rules must watch: the verdict, the loop's progress, the target itself.
RULE_METRICS = ("skewguard_verdict", "skewguard_last_measurement_age_seconds", "up{")


def guard_sources(c):
    """The sources a container's guard reads: SKEWGUARD_SOURCES from its env,
    or its readiness probe's `--sources` (and whether the probe gave them)."""
    sources = next((e.get("value") for e in c.get("env", []) if e["name"] == "SKEWGUARD_SOURCES"), None)
    probe = ((c.get("readinessProbe") or {}).get("exec") or {}).get("command") or []
    if "--sources" in probe:
        return probe[probe.index("--sources") + 1], True
    return sources, False


def node_file_host(cw, sources, mounts, volumes, problems):
    """For sources that begin with node://: the hostPath the node file's
    directory comes from (None when not a hostPath), or False, with a problem
    added, when the directory is not mounted read-only."""
    path = pathlib.PurePosixPath(sources[len("node://"):].split(",")[0])
    m = mounts.get(str(path.parent))
    if not m or not m.get("readOnly"):
        problems.append(f"{cw}: reads {path} without a read-only mount of its directory")
        return False
    return volumes.get(m["name"], {}).get("hostPath", {}).get("path")


def check_rules(where, rules):
    """Problems of a rules document ({groups: [...]}) that the Operator and
    Prometheus would accept but that break the examples' promises."""
    problems = []
    groups = rules.get("groups") or []
    alerts = [r for g in groups for r in g.get("rules", []) if "alert" in r]
    if not alerts:
        problems.append(f"{where}: no alerting rules")
    exprs = " ".join(str(r.get("expr", "")) for r in alerts)
    for metric in RULE_METRICS:
        if metric not in exprs:
            problems.append(f"{where}: no rule on {metric}")
    for r in alerts:
        if not r["alert"].startswith("Skewguard"):
            problems.append(f"{where}: alert {r['alert']} lacks the Skewguard prefix")
        if "runbook_url" not in r.get("annotations", {}):
            problems.append(f"{where}: alert {r['alert']} has no runbook_url")
    return problems


def unknown_fields(given, kept, path=""):
    """Paths present in `given` that the model did not keep."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "."]
        found = []
        for key, value in given.items():
            if key not in kept:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(value, kept[key], f"{path}.{key}")
        return found
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (a, b) in enumerate(zip(given, kept)) for p in unknown_fields(a, b, f"{path}[{i}]")]
    return []


def check_crd(where, doc):
    """Validates an Operator resource against the CRD schema models."""
    if operator_v1 is None:
        if os.environ.get("CI") == "true":
            return [f"{where}: CI requires cloudcoil-models-prometheus-operator to validate CRDs"]
        print(f"SKIPPED: {where}: no CRD schema (pip install cloudcoil-models-prometheus-operator)", file=sys.stderr)
        return []
    model = getattr(operator_v1, doc["kind"])
    try:
        parsed = model.model_validate(doc)
    except Exception as e:  # pydantic.ValidationError, reported with its paths
        return [f"{where}: does not match the {doc['kind']} CRD schema: {e}"]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{where}: unknown field {p}" for p in unknown_fields(doc, kept)]


def selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all((labels or {}).get(k) == v for k, v in match.items())


def container_ports(doc):
    spec = pod_spec(doc) or {}
    return {p.get("name") for c in spec.get("initContainers", []) + spec.get("containers", []) for p in c.get("ports", [])}


def rule_ports(rules):
    return {(p.get("protocol", "TCP"), p.get("port")) for r in rules or [] for p in r.get("ports", [])}


def service_ports(svc):
    return {p.get("name") for p in svc["spec"].get("ports", [])}


def pod_labels(doc):
    return doc["spec"]["template"]["metadata"].get("labels")


# For each monitor kind: its endpoints field, and how to read the labels and
# port names of what it selects (Services, or the pods of workloads).
MONITORS = {
    "ServiceMonitor": ("endpoints", lambda s: s["metadata"].get("labels"), service_ports),
    "PodMonitor": ("podMetricsEndpoints", pod_labels, container_ports),
}


def check_monitor(where, doc, candidates):
    """A monitor selects something of the examples and names ports it has."""
    endpoints, labels_of, ports_of = MONITORS[doc["kind"]]
    spec = doc.get("spec", {})
    targets = [c for c in candidates if selects(spec.get("selector"), labels_of(c))]
    problems = [] if targets else [f"{where}: selects nothing of the examples"]
    for e in spec.get(endpoints, []):
        if e.get("path", "/metrics") != "/metrics":
            problems.append(f"{where}: endpoint path is not /metrics")
        for t in targets:
            if e.get("port") not in ports_of(t):
                problems.append(f"{where}: {t['kind']}/{t['metadata']['name']} has no port {e.get('port')}")
    return problems


def check_monitoring(docs):
    """ServiceMonitor, PodMonitor and NetworkPolicy fit the workloads they name."""
    problems = []
    found = {"ServiceMonitor": False, "PodMonitor": False, "NetworkPolicy": False}
    services = [d for _, d in docs if d["kind"] == "Service"]
    workloads = [d for _, d in docs if pod_spec(d) is not None]
    for name, doc in docs:
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        if doc["kind"] in CRD_MODELS:
            problems += check_crd(where, doc)
        if doc["kind"] in MONITORS:
            found[doc["kind"]] = True
            problems += check_monitor(where, doc, services if doc["kind"] == "ServiceMonitor" else workloads)
        if doc["kind"] == "NetworkPolicy":
            found["NetworkPolicy"] = True
            targets = [w for w in workloads if selects(spec.get("podSelector"), pod_labels(w))]
            if not targets:
                problems.append(f"{where}: selects no pods of the examples")
            egress = rule_ports(spec.get("egress"))
            for need in (("UDP", 53), ("TCP", 53), ("UDP", 123), ("TCP", 443), ("TCP", 4460)):
                if need not in egress:
                    problems.append(f"{where}: no egress to {need[0]} {need[1]} (the sources need it)")
            ingress = rule_ports(spec.get("ingress"))
            for w in targets:
                for port in container_ports(w):
                    if ("TCP", port) not in ingress:
                        problems.append(f"{where}: no ingress to port {port} of {w['metadata']['name']} (probes, scrapes)")
    for what, ok in found.items():
        if not ok:
            problems.append(f"no {what} example found")
    return problems


def main(root):
    root = pathlib.Path(root)
    problems = []
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    files = kustomization.get("resources", [])
    present = {p.name for p in root.glob("*.y*ml")} - {"kustomization.yaml"}
    for name in sorted(present - set(files)):
        problems.append(f"{name} is not listed in kustomization.yaml resources")
    if not any(i.get("name") == SKEWGUARD_IMAGE for i in kustomization.get("images", [])):
        problems.append(f"kustomization.yaml has no `images:` entry for {SKEWGUARD_IMAGE}")

    docs = []
    for name in files:
        for doc in yaml.safe_load_all((root / name).read_text()):
            if doc:
                docs.append((name, doc))

    found = {
        "wait-init": False,
        "sidecar": False,
        "daemonset": False,
        "service": False,
        "rules": False,
        "PrometheusRule": False,
        "publisher": False,
        "probe": False,
    }
    daemonset_labels = None
    publish_dirs = set()
    node_readers = []
    configmap_rules = operator_rules = None
    for name, doc in docs:
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        if spec is not None:
            pod_sc = spec.get("securityContext", {})
            init = spec.get("initContainers", [])
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in init + spec.get("containers", []):
                cw = f"{where} container {c['name']}"
                sc = c.get("securityContext", {})
                args = c.get("args", [])
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                # The node publisher may be root (it writes a root-owned hostPath
                # directory), with every other restriction in place.
                publisher = "--publish" in args
                if publisher:
                    target = pathlib.PurePosixPath(args[args.index("--publish") + 1])
                    m = mounts.get(str(target.parent))
                    host = (volumes.get(m["name"], {}) if m else {}).get("hostPath", {}).get("path")
                    if not host or m.get("readOnly"):
                        problems.append(f"{cw}: publishes {target} without a writable hostPath mount of its directory")
                    publish_dirs.add(host)
                    found["publisher"] = True
                sources, from_probe = guard_sources(c)
                found["probe"] |= from_probe
                if sources and sources.startswith("node://"):
                    host = node_file_host(cw, sources, mounts, volumes, problems)
                    if host is not False:
                        node_readers.append((cw, host))
                elif c.get("image") == SKEWGUARD_IMAGE and not publisher:
                    problems.append(f"{cw}: a guard that does not list node:// first ({sources!r})")
                for key, want in (
                    ("runAsNonRoot", not (publisher and sc.get("runAsUser") == 0)),
                    ("readOnlyRootFilesystem", True),
                    ("allowPrivilegeEscalation", False),
                ):
                    if sc.get(key, pod_sc.get(key)) is not want:
                        problems.append(f"{cw}: securityContext.{key} is not {want}")
                if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                    problems.append(f"{cw}: capabilities.drop is not [ALL]")
                seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
                if seccomp.get("type") != "RuntimeDefault":
                    problems.append(f"{cw}: seccompProfile is not RuntimeDefault")
                res = c.get("resources", {})
                if "memory" not in res.get("requests", {}) or "memory" not in res.get("limits", {}):
                    problems.append(f"{cw}: no memory request and limit")
                if c.get("image") != SKEWGUARD_IMAGE:
                    continue
                # Restarting skewguard cannot fix a clock: liveness must follow the loop only.
                if c.get("livenessProbe") and http_path(c["livenessProbe"]) != "/livez":
                    problems.append(f"{cw}: livenessProbe must use /livez, not the verdict")
                if c in init and args == ["wait"] and "restartPolicy" not in c:
                    found["wait-init"] = True
                if c in init and c.get("restartPolicy") == "Always":
                    start = c.get("startupProbe") or {}
                    exec_cmd = (start.get("exec") or {}).get("command")
                    if not (http_path(start) == "/healthz" or exec_cmd == ["/skewguard", "health"]):
                        problems.append(f"{cw}: sidecar startupProbe must follow the verdict")
                    if http_path(c.get("readinessProbe")) not in ("/readyz", "/healthz"):
                        problems.append(f"{cw}: sidecar readinessProbe must follow the verdict")
                    if http_path(c.get("livenessProbe")) != "/livez":
                        problems.append(f"{cw}: sidecar needs a livenessProbe on /livez")
                    found["sidecar"] = True
                if doc["kind"] == "DaemonSet" and args[:1] == ["serve"]:
                    found["daemonset"] = True
                    daemonset_labels = doc["spec"]["template"]["metadata"]["labels"]
        if doc["kind"] == "ConfigMap":
            for key, text in doc.get("data", {}).items():
                rules = yaml.safe_load(text)
                if not isinstance(rules, dict) or "groups" not in rules:
                    continue
                problems += check_rules(f"{where} {key}", rules)
                configmap_rules = rules
                found["rules"] = True
        if doc["kind"] == "PrometheusRule":
            problems += check_rules(where, doc.get("spec", {}))
            operator_rules = doc.get("spec")
            found["PrometheusRule"] = True
    for name, doc in docs:
        if doc["kind"] == "Service" and daemonset_labels:
            selector = doc["spec"].get("selector", {})
            if selector and all(daemonset_labels.get(k) == v for k, v in selector.items()):
                found["service"] = True
    for cw, host in node_readers:
        if host not in publish_dirs:
            problems.append(f"{cw}: reads host directory {host}; the publisher writes {sorted(map(str, publish_dirs))}")
    problems += check_monitoring(docs)
    if configmap_rules is not None and operator_rules is not None and configmap_rules != operator_rules:
        problems.append("the PrometheusRule and the rules ConfigMap say different things")
    for what, ok in found.items():
        if not ok:
            problems.append(f"no {what} example found")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("\n".join(str(root / f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "k8s"))
