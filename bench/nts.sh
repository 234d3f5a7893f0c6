#!/usr/bin/env bash
# NTS benchmarks (called by bench/run.sh; runs alone too):
#
#   bench/nts.sh            # prints a Markdown table (also appended to $OUT if set)
#
# Starts chronyd as an NTS server on 127.0.0.1 (clock +1200 s by libfaketime) with a
# certificate from a throw-away CA made here with openssl, then measures in one run:
#   - `skewguard check` against nts://localhost:KE versus `chronyd -Q` with a one-off
#     configuration (`server localhost … nts`, the CA as ntstrustedcerts), hyperfine,
#     interleaved rounds, medians; target: skewguard ≤ 0.2 × chronyd -Q;
#   - the static binary's size;
#   - one round's cost with NTS cookies reused (as `serve` does) versus a key exchange
#     every round (examples/nts_round_cost.rs, ROUND_COST_ROUNDS rounds each).
# Knobs: RUNS=20, ROUNDS=3, ROUND_COST_ROUNDS=200, BIN=path of the binary, OUT=file.
# Needs: chrony, libfaketime, hyperfine, openssl, python3, ss (iproute2).
set -euo pipefail

RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-3}
ROUND_COST_ROUNDS=${ROUND_COST_ROUNDS:-200}
SHIFT=+1200
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/static/skewguard}   # scripts/static-build.sh, any architecture
# libfaketime in this machine's multiarch directory (x86_64-linux-gnu, aarch64-linux-gnu, …).
FAKETIME_LIB=${FAKETIME_LIB:-$(ls /usr/lib/"$(gcc -dumpmachine 2>/dev/null || uname -m)"*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n1 || true)}
export PATH=$PATH:/usr/sbin:/sbin

die() { echo "bench/nts: $*" >&2; exit 2; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for t in chronyd hyperfine openssl python3 ss; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -r $FAKETIME_LIB ]] || die "$FAKETIME_LIB not found: apt-get install -y libfaketime"
if [[ ! -x $BIN ]]; then
    log "building the static release binary"
    scripts/static-build.sh --locked >&2
fi

WORK=$(mktemp -d /tmp/skewguard-bench-nts.XXXXXX)
chmod 755 "$WORK" # chronyd drops root privileges (to _chrony)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ ${KEEP:-0} == 1 ]] && echo "bench/nts: work directory kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .; }
pick_port() {
    local p
    for _ in $(seq 200); do
        p=$((33000 + RANDOM % 12000))
        if port_free "$p" && [[ " ${TAKEN:-} " != *" $p "* ]]; then TAKEN="${TAKEN:-} $p"; echo "$p"; return; fi
    done
    die "no free port"
}

# --- a CA and a leaf for localhost (CA:FALSE, or rustls says CaUsedAsEndEntity) ----------
log "making a test CA and a leaf certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=skewguard-bench-CA -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 30 -extfile "$WORK/leaf.ext" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK"/*.pem
mkdir -m 777 "$WORK/dump"

NTP_PORT=$(pick_port)
KE_PORT=$(pick_port)
cat >"$WORK/server.conf" <<C
port $NTP_PORT
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 3
cmdport 0
ntsserverkey $WORK/key.pem
ntsservercert $WORK/cert.pem
ntsport $KE_PORT
ntsdumpdir $WORK/dump
pidfile $WORK/server.pid
driftfile $WORK/server.drift
C
log "chronyd NTS server: NTP $NTP_PORT, NTS-KE $KE_PORT, clock $SHIFT s"
FAKETIME=$SHIFT LD_PRELOAD=$FAKETIME_LIB chronyd -d -x -f "$WORK/server.conf" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ss -Hlnt "sport = :$KE_PORT" | grep -q . && break; sleep 0.05; done
ss -Hlnt "sport = :$KE_PORT" | grep -q . || { cat "$WORK/server.log" >&2; die "chronyd did not listen"; }

cat >"$WORK/client.conf" <<C
server localhost port $NTP_PORT nts ntsport $KE_PORT iburst maxsamples 1
ntstrustedcerts $WORK/ca.pem
cmdport 0
pidfile $WORK/client.pid
ntsdumpdir $WORK/dump
C
SG=(env -i SKEWGUARD_SOURCES="nts://localhost:$KE_PORT" SKEWGUARD_CA_FILE="$WORK/ca.pem"
    SKEWGUARD_MAX_SKEW=4m "$BIN" check --output json)
CHRONY=(chronyd -Q -f "$WORK/client.conf")

# Sanity: both see +1200 s.
sg_offset=$("${SG[@]}" | python3 -c 'import json,sys; print("%+.6f" % json.load(sys.stdin)["offset_seconds"])') || true
chrony_line=$("${CHRONY[@]}" 2>&1 | grep -o 'System clock wrong by [-0-9.]* seconds' | head -1) || true
log "skewguard: offset $sg_offset s; chronyd -Q: $chrony_line"
[[ -n $sg_offset && -n $chrony_line ]] || die "a client did not measure (see above)"

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
sg_means=(); chrony_means=()
for r in $(seq "$ROUNDS"); do
    log "hyperfine round $r/$ROUNDS"
    hyperfine -N -i -w 2 -r "$RUNS" --export-json "$WORK/h$r.json" \
        -n skewguard "$(printf '%q ' "${SG[@]}")" -n chronyd "$(printf '%q ' "${CHRONY[@]}")" >/dev/null 2>&1 \
        || hyperfine -i -w 2 -r "$RUNS" --export-json "$WORK/h$r.json" \
            -n skewguard "$(printf '%q ' "${SG[@]}")" -n chronyd "$(printf '%q ' "${CHRONY[@]}")" >/dev/null
    sg_means+=("$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([r["median"] for r in d["results"] if r["command"]=="skewguard"][0])' "$WORK/h$r.json")")
    chrony_means+=("$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([r["median"] for r in d["results"] if r["command"]=="chronyd"][0])' "$WORK/h$r.json")")
done
sg=$(median "${sg_means[@]}")
ch=$(median "${chrony_means[@]}")
ratio=$(python3 -c "print('%.3f' % ($sg / $ch))")

size=$(stat -c %s "$BIN")
log "round cost ($ROUND_COST_ROUNDS rounds each)"
cost=$(cd "$ROOT" && cargo run -q --release --example nts_round_cost -- "nts://localhost:$KE_PORT" "$WORK/ca.pem" "$ROUND_COST_ROUNDS" 2>/dev/null)

table=$(cat <<T
| NTS (loopback chronyd 4.3, clock $SHIFT s) | value |
| --- | --- |
| skewguard check, nts:// (median of $ROUNDS hyperfine medians) | $(python3 -c "print('%.1f ms' % ($sg*1e3))") (offset $sg_offset s) |
| chronyd -Q, server … nts, maxsamples 1 | $(python3 -c "print('%.1f ms' % ($ch*1e3))") ($chrony_line) |
| ratio skewguard / chronyd -Q (target ≤ 0.2) | $ratio |
| static binary with NTS | $size bytes ($(python3 -c "print('%.2f MiB' % ($size/1048576))")) |
| one round, $(echo "$cost" | sed -n 1p | sed 's/;.*//') | $(echo "$cost" | sed -n 1p | sed 's/^[^;]*; //') |
| one round, $(echo "$cost" | sed -n 2p | sed 's/;.*//') | $(echo "$cost" | sed -n 2p | sed 's/^[^;]*; //') |
T
)
echo "$table"
[[ -n ${OUT:-} ]] && { echo; echo "$table"; } >>"$OUT"
exit 0
