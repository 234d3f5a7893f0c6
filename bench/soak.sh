#!/usr/bin/env bash
# Soak test of `skewguard serve` (not part of `cargo test`).
#
#   bench/soak.sh [DURATION_SECONDS]      # default 600
#
# Starts chronyd on loopback (unshifted) and `skewguard serve` measuring it every
# second, then for DURATION seconds:
#   - wrk -c 16 -t 2 hammers /healthz (503 is a legitimate answer while skewed;
#     socket errors, timeouts and any other status count as failures);
#   - chronyd is restarted every 30 s with the next shift of 0, +1200, -1200, 0, …
#     (libfaketime), so the verdict must follow ok → fail → fail(ahead) → ok …;
#   - /healthz is polled once a second and every change of verdict (and of the
#     offset's rounded value) is logged with the time since the last shift;
#   - serve's RSS and open file descriptors are sampled every 10 s.
# At the end it prints requests, failures, RSS/fd at start/end/max and the
# changes observed against the shift changes made. Exit 0 when there were no
# failures, serve stayed up and every shift was seen; 1 otherwise.
#
# Needs: chrony, libfaketime, wrk, curl (Debian packages of the same names).
# Ports: NTP_PORT and HTTP_PORT (default: free ones in 20000–32767).
# Everything runs on 127.0.0.1; the work directory is removed at exit unless
# KEEP=1.
set -euo pipefail

DURATION=${1:-600}
SHIFT_EVERY=${SHIFT_EVERY:-30}
SAMPLE_EVERY=10
SHIFTS=(0 +1200 -1200)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/static/skewguard}   # scripts/static-build.sh, any architecture

die() { echo "soak: $*" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 30 ]] || die "DURATION must be whole seconds ≥ 30, got '$DURATION'"

need() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]] || die "$1 not found: apt-get install -y $2"; }
need chronyd chrony
need wrk wrk
need curl curl
FAKETIME_LIB=""
for f in /usr/lib/*-linux-gnu*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [[ -e $f ]] && FAKETIME_LIB=$f && break
done
[[ -n $FAKETIME_LIB ]] || die "libfaketime not found: apt-get install -y libfaketime"
CHRONYD=$(command -v chronyd || echo /usr/sbin/chronyd)

if [[ ! -x $BIN ]]; then
    echo "soak: building the static release binary"
    scripts/static-build.sh --locked
fi

# --- ports and work directory ---------------------------------------------------
port_free() { ! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .; }
pick_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12768))
        port_free "$p" && { echo "$p"; return; }
    done
    die "no free port"
}
NTP_PORT=${NTP_PORT:-$(pick_port)}
HTTP_PORT=${HTTP_PORT:-$(pick_port)}
[[ $HTTP_PORT != "$NTP_PORT" ]] || HTTP_PORT=$(pick_port)
URL=http://127.0.0.1:$HTTP_PORT/healthz

WORK=$(mktemp -d /tmp/skewguard-soak.XXXXXX)
chmod 777 "$WORK" # chronyd drops to its own user and still writes here
PIDS=()
CHRONY_PID=""
SERVE_PID=""

cleanup() {
    local pid
    [[ -n $CHRONY_PID ]] && kill "$CHRONY_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then echo "soak: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
START=$(now)
since_start() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%7.1f", b - a }'; }

# --- chronyd ---------------------------------------------------------------------
cat >"$WORK/chrony.conf" <<EOF
port $NTP_PORT
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 3
cmdport 0
bindcmdaddress /
pidfile $WORK/chronyd.pid
driftfile $WORK/chrony.drift
EOF

start_chrony() { # start_chrony SHIFT (0 = unshifted)
    if [[ -n $CHRONY_PID ]]; then
        kill "$CHRONY_PID" 2>/dev/null || true
        wait "$CHRONY_PID" 2>/dev/null || true
    fi
    if [[ $1 == 0 ]]; then
        "$CHRONYD" -d -x -f "$WORK/chrony.conf" >>"$WORK/chronyd.log" 2>&1 &
    else
        FAKETIME=$1 LD_PRELOAD=$FAKETIME_LIB \
            "$CHRONYD" -d -x -f "$WORK/chrony.conf" >>"$WORK/chronyd.log" 2>&1 &
    fi
    CHRONY_PID=$!
}

# --- serve -------------------------------------------------------------------------
start_chrony 0
sleep 0.5
# Only the settings below: none of the caller's SKEWGUARD_* variables.
mapfile -t UNSET < <(env | sed -n 's/^\(SKEWGUARD_[A-Z_]*\)=.*/-u\n\1/p')
env "${UNSET[@]}" \
    SKEWGUARD_SOURCES="ntp://127.0.0.1:$NTP_PORT" \
    SKEWGUARD_LISTEN="127.0.0.1:$HTTP_PORT" \
    SKEWGUARD_INTERVAL=1s \
    SKEWGUARD_TIMEOUT=500ms \
    SKEWGUARD_LOG=warn \
    "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 "$URL" && break
    sleep 0.1
done
curl -s -o /dev/null -m 1 "$URL" || die "serve does not answer on $URL: $(cat "$WORK/serve.log")"
echo "soak: serve pid $SERVE_PID on $URL, chronyd on udp 127.0.0.1:$NTP_PORT, ${DURATION}s, shift every ${SHIFT_EVERY}s"

# --- samplers ------------------------------------------------------------------------
# RSS (kB) and open fds of serve every SAMPLE_EVERY seconds.
sample_resources() {
    while kill -0 "$SERVE_PID" 2>/dev/null; do
        local rss fds
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVE_PID/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$SERVE_PID/fd" 2>/dev/null | wc -l || true)
        echo "$(since_start) $rss $fds" >>"$WORK/resources"
        sleep "$SAMPLE_EVERY"
    done
}
sample_resources &
PIDS+=($!)

# Verdict and rounded offset of /healthz once a second; each change is a line.
poll_health() {
    local last="" state body code verdict offset
    while kill -0 "$SERVE_PID" 2>/dev/null; do
        body=$(curl -s -m 2 -w '\n%{http_code}' "$URL" || echo $'\n000')
        code=${body##*$'\n'}
        verdict=$(grep -o '"verdict":"[a-z]*"' <<<"$body" | head -1 | cut -d'"' -f4 || true)
        offset=$(grep -o '"offset_seconds":[-0-9.eE+]*' <<<"$body" | head -1 | cut -d: -f2 || true)
        # Whole seconds, and never "-0".
        [[ -n $offset ]] && offset=$(awk -v o="$offset" 'BEGIN { printf "%+d", sprintf("%.0f", o) + 0 }') || offset=null
        state="${verdict:-none} $offset $code"
        if [[ $state != "$last" ]]; then
            echo "$(since_start) $state" >>"$WORK/verdicts"
            last=$state
        fi
        sleep 1
    done
}
poll_health &
PIDS+=($!)

# --- load ------------------------------------------------------------------------------
cat >"$WORK/status.lua" <<'EOF'
-- Counts responses by status across wrk's threads.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      io.write(string.format("STATUS %d %d\n", status, n))
    end
  end
end
EOF
wrk -c 16 -t 2 -d "${DURATION}s" --timeout 2s --latency -s "$WORK/status.lua" "$URL" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
PIDS+=($WRK_PID)

# --- shifts: the main loop, until wrk is done -----------------------------------------
SHIFT_CHANGES=0
i=0
: >"$WORK/shifts"
while kill -0 "$WRK_PID" 2>/dev/null; do
    for _ in $(seq "$SHIFT_EVERY"); do
        kill -0 "$WRK_PID" 2>/dev/null || break 2
        sleep 1
    done
    i=$((i + 1))
    shift=${SHIFTS[$((i % ${#SHIFTS[@]}))]}
    echo "$(since_start) $shift" >>"$WORK/shifts"
    start_chrony "$shift"
    SHIFT_CHANGES=$((SHIFT_CHANGES + 1))
    echo "soak: $(since_start)s chronyd restarted with shift $shift"
done
wait "$WRK_PID" || true
sleep 2 # one more poll and sample

SERVE_ALIVE=yes
kill -0 "$SERVE_PID" 2>/dev/null || SERVE_ALIVE=no
SERVE_EXIT=""
if [[ $SERVE_ALIVE == yes ]]; then
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID" && SERVE_EXIT=0 || SERVE_EXIT=$?
    SERVE_PID=""
fi

# --- report ------------------------------------------------------------------------------
echo
echo "=== wrk"
grep -v '^STATUS' "$WORK/wrk.out"
REQUESTS=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$WORK/wrk.out")
SOCKET_ERRORS=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$WORK/wrk.out" |
    awk '{ print $1 + $2 + $3 + $4 }')
S200=$(awk '$1 == "STATUS" && $2 == 200 { n += $3 } END { print n + 0 }' "$WORK/wrk.out")
S503=$(awk '$1 == "STATUS" && $2 == 503 { n += $3 } END { print n + 0 }' "$WORK/wrk.out")
SOTHER=$(awk '$1 == "STATUS" && $2 != 200 && $2 != 503 { n += $3 } END { print n + 0 }' "$WORK/wrk.out")
S5XX=$(awk '$1 == "STATUS" && $2 >= 500 { n += $3 } END { print n + 0 }' "$WORK/wrk.out")
FAILURES=$((${SOCKET_ERRORS:-0} + SOTHER))

echo
echo "=== verdict changes (seconds since start, verdict, rounded offset, HTTP status)"
cat "$WORK/verdicts"
echo "=== shifts (seconds since start, shift)"
cat "$WORK/shifts"

# Expected: one change of (verdict, rounded offset) per shift; a verdict change
# only where ok and fail alternate (+1200 → -1200 stays fail).
VERDICT_CHANGES=$(awk '{ v = $2 } NR > 1 && v != last { n++ } { last = v } END { print n + 0 }' "$WORK/verdicts")
VERDICT_CHANGES_NO_UNKNOWN=$(awk '$2 != "unknown" && $2 != "none" { if (seen && $2 != last) n++; last = $2; seen = 1 } END { print n + 0 }' "$WORK/verdicts")
OFFSET_CHANGES=$(awk '$3 != "null" { if (seen && $3 != last) n++; last = $3; seen = 1 } END { print n + 0 }' "$WORK/verdicts")
UNKNOWN_SPELLS=$(awk '$2 == "unknown" || $2 == "none" { n++ } END { print n + 0 }' "$WORK/verdicts")
EXPECTED_VERDICT_CHANGES=$(awk 'BEGIN { last = "0" } { cls = ($2 == "0") ? "ok" : "fail"; prev = (last == "0") ? "ok" : "fail"; if (cls != prev) n++; last = $2 } END { print n + 0 }' "$WORK/shifts")
# Detection delay: from each shift to the first poll showing its offset.
DETECTION=$(awk '
    FNR == NR { t[++k] = $1; s[k] = ($2 == "0") ? "+0" : $2; next }
    $3 != "null" { obs[++m] = $1; off[m] = $3 }
    END {
        for (j = 1; j <= k; j++) {
            found = -1
            for (x = 1; x <= m; x++) if (obs[x] >= t[j] && off[x] == s[j]) { found = obs[x] - t[j]; break }
            if (found < 0) missed++; else { sum += found; if (found > max) max = found; seen++ }
        }
        printf "%d of %d shifts seen; delay mean %.1f s, max %.1f s\n", seen, k, seen ? sum / seen : 0, max
    }' "$WORK/shifts" "$WORK/verdicts")

echo
echo "=== resources of serve (seconds since start, VmRSS kB, open fds)"
cat "$WORK/resources"
read -r RSS_START FD_START < <(awk 'NR == 1 { print $2, $3 }' "$WORK/resources")
read -r RSS_END FD_END < <(awk 'END { print $2, $3 }' "$WORK/resources")
read -r RSS_MAX FD_MAX < <(awk '$2 > r { r = $2 } $3 > f { f = $3 } END { print r, f }' "$WORK/resources")

cat <<EOF

=== soak summary (${DURATION}s)
requests            ${REQUESTS:-?}
  200               $S200
  503               $S503 (expected while skewed or unknown)
  other status      $SOTHER (non-2xx/3xx reported by wrk: ${NON2XX:-0}; 5xx total: $S5XX)
  socket errors     ${SOCKET_ERRORS:-0} (connect + read + write + timeout)
  failures          $FAILURES
RSS kB              start $RSS_START, end $RSS_END, max $RSS_MAX
open fds            start $FD_START, end $FD_END, max $FD_MAX
shift changes       $SHIFT_CHANGES
verdict changes     $VERDICT_CHANGES observed (incl. unknown spells: $UNKNOWN_SPELLS); $VERDICT_CHANGES_NO_UNKNOWN between ok/warn/fail, $EXPECTED_VERDICT_CHANGES expected
offset changes      $OFFSET_CHANGES observed, $SHIFT_CHANGES expected
detection           $DETECTION
serve               alive at the end: $SERVE_ALIVE; exit on SIGTERM: ${SERVE_EXIT:-n/a}
EOF
# serve ends every connection after CONNECTION_LIFETIME (120 s, src/serve/conn.rs); a
# close that races wrk's next request on the kept-alive connection is a read error.
if ((${SOCKET_ERRORS:-0} > 0)); then
    echo "note: serve closes each kept-alive connection after 120 s; with 16 connections up to $((16 * (DURATION / 120))) read errors come from that race"
fi

STATUS=0
((FAILURES == 0)) || { echo "soak: FAILED: $FAILURES failed requests"; STATUS=1; }
[[ $SERVE_ALIVE == yes && $SERVE_EXIT == 0 ]] || { echo "soak: FAILED: serve did not survive or exit cleanly"; STATUS=1; }
((OFFSET_CHANGES >= SHIFT_CHANGES)) || { echo "soak: FAILED: not every shift was seen"; STATUS=1; }
exit $STATUS
