#!/usr/bin/env bash
# Roughtime benchmark (runs alone; not called by bench/run.sh):
#
#   bench/roughtime.sh          # prints a Markdown table (also appended to $OUT if set)
#
# Starts roughenough-server 1.3.0-draft14 on 127.0.0.1 with its clock shifted by
# libfaketime (SHIFT, default +1200 s) and a fresh key, then, interleaved in one run,
# RUNS times each:
#   - `skewguard check --sources roughtime://127.0.0.1:PORT#KEY --output json`: its
#     offset and bound from the report;
#   - roughenough's own client (`roughenough-client 127.0.0.1 PORT -p 14 -k KEY -j`):
#     it prints the verified midpoint (whole seconds) and radius but no offset, so its
#     offset is computed here as midpoint + 0.5 s minus the middle of the wall-clock
#     interval around the process (process start-up included);
# and reports the median wall time per query (process start to exit) of each, the
# median offsets and their median distance from SHIFT.
# Knobs: RUNS=30, SHIFT=+1200, BIN=path of skewguard (default: the release build), OUT=file.
# Needs: roughenough-server and roughenough-client (cargo install roughenough --version
# 1.3.0-draft14 --locked), libfaketime, python3.
set -euo pipefail

RUNS=${RUNS:-30}
SHIFT=${SHIFT:-+1200}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/skewguard}
FAKETIME_LIB=${FAKETIME_LIB:-$(ls /usr/lib/"$(gcc -dumpmachine 2>/dev/null || uname -m)"*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n1 || true)}

die() { echo "bench/roughtime: $*" >&2; exit 2; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for t in roughenough-server roughenough-client python3; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -r $FAKETIME_LIB ]] || die "$FAKETIME_LIB not found: apt-get install -y libfaketime"
if [[ ! -x $BIN ]]; then
    log "building the release binary"
    cargo build --release --locked >&2
fi

WORK=$(mktemp -d /tmp/skewguard-bench-roughtime.XXXXXX)
PID=""
cleanup() {
    [[ -n $PID ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SEED=$(python3 -c 'import os; print(os.urandom(32).hex())')
log "roughenough-server on 127.0.0.1:$PORT, clock $SHIFT s"
ROUGHENOUGH_INTERFACE=127.0.0.1 ROUGHENOUGH_PORT=$PORT ROUGHENOUGH_SEED=$SEED \
    FAKETIME=$SHIFT FAKETIME_DONT_FAKE_MONOTONIC=1 LD_PRELOAD=$FAKETIME_LIB \
    roughenough-server ENV >"$WORK/server.log" 2>&1 &
PID=$!
KEY=""
for _ in $(seq 100); do
    KEY=$(grep -o 'public key *: [0-9a-f]\{64\}' "$WORK/server.log" | head -n1 | grep -o '[0-9a-f]\{64\}' || true)
    [[ -n $KEY ]] && break
    sleep 0.1
done
[[ -n $KEY ]] || { cat "$WORK/server.log" >&2; die "roughenough-server printed no key"; }
sleep 0.3

python3 - "$BIN" "$PORT" "$KEY" "$RUNS" "$SHIFT" <<'PY' | tee -a "${OUT:-/dev/null}"
import datetime, json, os, re, statistics, subprocess, sys, time
binary, port, key, runs, shift = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
uri = f"roughtime://127.0.0.1:{port}#{key}"
env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWGUARD_")}
sg_cmd = [binary, "check", "--sources", uri, "--output", "json"]
rc_cmd = ["roughenough-client", "127.0.0.1", port, "-p", "14", "-k", key, "-j", "-z", "-t", "2"]
sg_t, sg_off, sg_unc, rc_t, rc_off, rc_rad = [], [], [], [], [], []
for i in range(runs):
    t0 = time.time(); p0 = time.perf_counter()
    out = subprocess.run(sg_cmd, capture_output=True, text=True, env=env)
    sg_t.append(time.perf_counter() - p0)
    src = json.loads(out.stdout)["sources"][0]
    if src["status"] != "ok":
        sys.exit(f"skewguard: {src}")
    sg_off.append(src["offset_seconds"]); sg_unc.append(src["uncertainty_seconds"])
    before = time.time(); p0 = time.perf_counter()
    out = subprocess.run(rc_cmd, capture_output=True, text=True)
    rc_t.append(time.perf_counter() - p0); after = time.time()
    # Its -j output is not quite JSON (`"verified": Yes`): read the fields by pattern.
    m = re.search(r'"midpoint": "([^"]+)", "radius": (\d+), "verified": (\w+)', out.stdout)
    if not m or m.group(3) != "Yes":
        sys.exit(f"roughenough-client: {out.stdout}{out.stderr}")
    mid = datetime.datetime.strptime(m.group(1), "%b %d %Y %H:%M:%S UTC").replace(tzinfo=datetime.timezone.utc).timestamp()
    rc_off.append(mid + 0.5 - (before + after) / 2); rc_rad.append(float(m.group(2)))
med = statistics.median
err = lambda xs: med(abs(x - shift) for x in xs)
print(f"| Roughtime, roughenough 1.3.0-draft14 on loopback, clock {shift:+g} s, {runs} interleaved runs each (medians) | skewguard check | roughenough-client -p 14 |")
print("| --- | --- | --- |")
print(f"| time per query (process start to exit) | {med(sg_t)*1e3:.1f} ms | {med(rc_t)*1e3:.1f} ms |")
print(f"| offset measured | {med(sg_off):+.3f} s ± {med(sg_unc):.3f} s | {med(rc_off):+.3f} s (radius {med(rc_rad):g} s) |")
print(f"| distance from the true {shift:+g} s | {err(sg_off):.3f} s | {err(rc_off):.3f} s |")
print(f"| time ratio skewguard / roughenough-client | {med(sg_t)/med(rc_t):.2f} | |")
PY
