"""What tests/it/helm.rs checks in the Helm chart's rendered output beyond schema
validity (kubernetes-validate does that):

    python3 tests/docker/check_rendered.py RULES.yml RENDERED.yaml [assigned-ids:RENDERED.yaml …]

Each RENDERED.yaml is `helm template` output, RULES.yml the rules' one source
(k8s/prometheus/skewguard.rules.yml); one run checks many renderings, as loading
the CRD models takes most of its time. Checks the Prometheus Operator kinds
against the CRD schema models (as check_k8s.py does for k8s/), the security
context of every container (with the assigned-ids: prefix: no runAsUser/runAsGroup except
on a container that must be root), that guards read node:// first with a
read-only mount, that the publisher writes where guards read, that the
ServiceMonitor selects the rendered Service's port, and that the PrometheusRule
says what the rules file says. Prints `KIND/NAME` per document and exits 0, or
prints the problems to stderr and exits 1.
"""

import json
import pathlib
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import check_k8s  # noqa: E402  (same directory)


def check(rendered, rules_path, assigned_ids):
    docs = [d for d in yaml.safe_load_all(pathlib.Path(rendered).read_text()) if d]
    rules = yaml.safe_load(pathlib.Path(rules_path).read_text())
    problems = []
    publish_dirs = set()
    guard_reads = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in check_k8s.CRD_MODELS:
            problems += check_k8s.check_crd(where, doc)
        if doc["kind"] == "PrometheusRule":
            problems += check_k8s.check_rules(where, doc["spec"])
            if doc["spec"] != rules:
                problems.append(f"{where}: does not say what {rules_path} says")
        if doc["kind"] == "ServiceMonitor":
            services = [d for d in docs if d["kind"] == "Service"]
            problems += check_k8s.check_monitor(where, doc, services)
        if doc["kind"] == "ConfigMap" and "skewguard-dashboard.json" in doc.get("data", {}):
            try:
                json.loads(doc["data"]["skewguard-dashboard.json"])
            except ValueError as e:
                problems.append(f"{where}: the dashboard is not JSON: {e}")
        spec = check_k8s.pod_spec(doc)
        if spec is None:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            root = sc.get("runAsUser") == 0
            for key, want in (
                ("runAsNonRoot", not root),
                ("readOnlyRootFilesystem", True),
                ("allowPrivilegeEscalation", False),
            ):
                if sc.get(key) is not want:
                    problems.append(f"{cw}: securityContext.{key} is not {want}")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
                problems.append(f"{cw}: capabilities are not drop [ALL] only")
            if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{cw}: seccompProfile is not RuntimeDefault")
            if assigned_ids and not root and ("runAsUser" in sc or "runAsGroup" in sc):
                problems.append(f"{cw}: sets a user or group the platform should assign")
            if not assigned_ids and not root and sc.get("runAsUser") is None:
                problems.append(f"{cw}: no runAsUser")
            args = c.get("args", [])
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            if "--publish" in args:
                path = pathlib.PurePosixPath(args[args.index("--publish") + 1])
                m = mounts.get(str(path.parent))
                if not m or m.get("readOnly") or "hostPath" not in volumes.get(m["name"], {}):
                    problems.append(f"{cw}: publishes to {path} without a writable hostPath mount of its directory")
                publish_dirs.add(volumes[m["name"]]["hostPath"]["path"] if m else None)
            sources, _ = check_k8s.guard_sources(c)
            if sources and sources.startswith("node://"):
                host = check_k8s.node_file_host(cw, sources, mounts, volumes, problems)
                if host is not False:
                    guard_reads.append((cw, host))
            elif "--publish" not in args and c.get("image", "").startswith("skewguard"):
                problems.append(f"{cw}: a guard that does not read node:// first ({sources!r})")
    for cw, host in guard_reads:
        if publish_dirs and host not in publish_dirs:
            problems.append(f"{cw}: reads host directory {host}, the publisher writes {sorted(publish_dirs)}")
    return [f"{rendered}: {p}" for p in problems], [f"{rendered}: {d['kind']}/{d['metadata']['name']}" for d in docs]


def main(rules_path, files):
    problems, found = [], []
    for f in files:
        assigned = f.startswith("assigned-ids:")
        p, d = check(f.removeprefix("assigned-ids:"), rules_path, assigned)
        problems += p
        found += d
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
