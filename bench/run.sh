#!/usr/bin/env bash
# Benchmarks of skewguard against its public peers (not part of `cargo test`).
#
#   bench/run.sh [SOAK_MINUTES]        # default 10; whole run ≈ max(SOAK_MINUTES, ~4) minutes
#
# Starts its own peers on 127.0.0.1 (free ports):
#   - chronyd, unshifted, and chronyd shifted by +1200 s (libfaketime);
#   - nginx shifted by -600.25 s, and one by -600.3 s (libfaketime), serving `Date` (`return 204`);
#   - nginx unshifted, `return 204`, with 1 and with 2 worker processes (the ceiling for /healthz);
#   - `skewguard serve` twice: one idle (SKEWGUARD_INTERVAL=1s, RSS sampled for SOAK_MINUTES)
#     and one under wrk.
# and measures whole processes with public tools (hyperfine, /usr/bin/time, wrk, htpdate,
# chronyd -Q). Repeated measurements are interleaved in rounds and summarised by their median,
# because the machine may be shared. Prints a Markdown table (also written to $OUT if set).
#
# Then bench/nts.sh (NTS: check vs chronyd -Q, size, round cost with cookies reused vs a key
# exchange every round); NTS=0 skips it. Then bench/fleet.py (serve under a connection flood beside
# nginx, holdover durations, drift estimate against libfaketime's true rate); FLEET=0 skips it.
# Knobs (environment): RUNS=20 hyperfine runs per command per round, ROUNDS=3 rounds,
# HTTP_RUNS=10 HTTP-Date runs per tool, WRK_ROUNDS=3, WRK_DURATION=10s, BIN=path of the binary,
# OUT=file for the table, KEEP=1 keeps the work directory.
# Needs: chrony, libfaketime, nginx-light, htpdate, hyperfine, wrk, time, curl, python3
# (Debian packages of the same names).
set -euo pipefail

SOAK_MINUTES=${1:-10}
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-3}
HTTP_RUNS=${HTTP_RUNS:-10}
WRK_ROUNDS=${WRK_ROUNDS:-3}
WRK_DURATION=${WRK_DURATION:-10s}
SHIFT_NTP=+1200
SHIFT_HTTP=-600.25
# A second shift that is not a multiple of htpdate's binary steps (1 s >> n): -600.25 is one, so
# htpdate's bisection lands on it exactly; -600.3 shows its real resolution.
SHIFT_HTTP2=-600.3

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/static/skewguard}   # scripts/static-build.sh, any architecture
# libfaketime in this machine's multiarch directory (x86_64-linux-gnu, aarch64-linux-gnu, …).
FAKETIME_LIB=${FAKETIME_LIB:-$(ls /usr/lib/"$(gcc -dumpmachine 2>/dev/null || uname -m)"*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n1 || true)}
export PATH=$PATH:/usr/sbin:/sbin

die() { echo "bench: $*" >&2; exit 2; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ $SOAK_MINUTES =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SOAK_MINUTES must be a number, got '$SOAK_MINUTES'"

need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install -y $2"; }
need chronyd chrony
need nginx nginx-light
need htpdate htpdate
need hyperfine hyperfine
need wrk wrk
need curl curl
need python3 python3
need openssl openssl
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: apt-get install -y time"
[[ -r $FAKETIME_LIB ]] || die "$FAKETIME_LIB not found: apt-get install -y libfaketime"

if [[ ! -x $BIN ]]; then
    log "building the static release binary"
    scripts/static-build.sh --locked >&2
fi

WORK=$(mktemp -d /tmp/skewguard-bench.XXXXXX)
chmod 755 "$WORK" # chronyd drops root privileges (to _chrony) and nginx workers to nobody
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ ${KEEP:-0} == 1 ]] && echo "bench: work directory kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- ports ------------------------------------------------------------------------
port_free() { ! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .; }
TAKEN=" "
pick_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        [[ $TAKEN == *" $p "* ]] && continue
        port_free "$p" && { TAKEN+="$p "; echo "$p"; return; }
    done
    die "no free port"
}
NTP0=$(pick_port); NTP1=$(pick_port)
HTTP_SHIFTED=$(pick_port); HTTP_SHIFTED2=$(pick_port); NGINX1=$(pick_port); NGINX2=$(pick_port)
SERVE_IDLE=$(pick_port); SERVE_LOAD=$(pick_port); HTTPS=$(pick_port)

# --- peers ------------------------------------------------------------------------
start_chrony() { # name port shift
    cat >"$WORK/$1.conf" <<C
port $2
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 3
cmdport 0
pidfile $WORK/$1.pid
driftfile $WORK/$1.drift
C
    if [[ $3 == 0 ]]; then
        chronyd -d -x -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 &
    else
        FAKETIME=$3 LD_PRELOAD=$FAKETIME_LIB chronyd -d -x -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 &
    fi
    PIDS+=($!)
}
start_nginx() { # name port workers shift
    mkdir -p "$WORK/$1"
    cat >"$WORK/$1/nginx.conf" <<N
daemon off;
worker_processes $3;
env FAKETIME;
env LD_PRELOAD;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
    uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
    server { listen 127.0.0.1:$2; location / { return 204; } }
}
N
    if [[ $4 == 0 ]]; then
        nginx -c "$WORK/$1/nginx.conf" -e "$WORK/$1/error.log" -p "$WORK/$1" >"$WORK/$1/out.log" 2>&1 &
    else
        FAKETIME=$4 LD_PRELOAD=$FAKETIME_LIB \
            nginx -c "$WORK/$1/nginx.conf" -e "$WORK/$1/error.log" -p "$WORK/$1" >"$WORK/$1/out.log" 2>&1 &
    fi
    PIDS+=($!)
}
start_nginx_tls() { # name port: TLS 1.2 only, certificate from a CA made here
    mkdir -p "$WORK/$1"
    (
        cd "$WORK/$1"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
            -days 2 -subj /CN=skewguard-bench-ca
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext
    ) >/dev/null 2>&1
    cat >"$WORK/$1/nginx.conf" <<N
daemon off;
worker_processes 1;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
    uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
    server {
        listen 127.0.0.1:$2 ssl; ssl_protocols TLSv1.2;
        ssl_certificate $WORK/$1/cert.pem; ssl_certificate_key $WORK/$1/key.pem;
        location / { return 204; }
    }
}
N
    nginx -c "$WORK/$1/nginx.conf" -e "$WORK/$1/error.log" -p "$WORK/$1" >"$WORK/$1/out.log" 2>&1 &
    PIDS+=($!)
}
start_serve() { # name port interval
    SKEWGUARD_SOURCES=ntp://127.0.0.1:$NTP0 SKEWGUARD_LISTEN=127.0.0.1:$2 SKEWGUARD_INTERVAL=$3 \
        SKEWGUARD_LOG=warn "$BIN" serve >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    eval "PID_${1^^}=$!"
}
wait_ntp() { # port
    local i out
    for i in $(seq 100); do
        out=$("$BIN" check --sources "ntp://127.0.0.1:$1" --timeout 200ms --output json 2>/dev/null || true)
        [[ $out == *'"status":"ok"'* ]] && return
        sleep 0.1
    done
    die "chronyd on port $1 did not answer"
}
wait_http() { # url expected-status
    local i
    for i in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == "$2" ]] && return
        sleep 0.1
    done
    die "$1 did not answer $2"
}

log "work directory $WORK; starting peers"
start_chrony chrony0 "$NTP0" 0
start_chrony chrony1 "$NTP1" "$SHIFT_NTP"
start_nginx nginx-shifted "$HTTP_SHIFTED" 1 "$SHIFT_HTTP"
start_nginx nginx-shifted2 "$HTTP_SHIFTED2" 1 "$SHIFT_HTTP2"
start_nginx nginx1 "$NGINX1" 1 0
start_nginx nginx2 "$NGINX2" 2 0
start_nginx_tls nginx-tls12 "$HTTPS"
wait_ntp "$NTP0"
wait_ntp "$NTP1"
wait_http "http://127.0.0.1:$HTTP_SHIFTED/" 204
wait_http "http://127.0.0.1:$HTTP_SHIFTED2/" 204
wait_http "http://127.0.0.1:$NGINX1/" 204
wait_http "http://127.0.0.1:$NGINX2/" 204

# --- 4a. idle serve: RSS over SOAK_MINUTES (runs in the background of everything else) ---
start_serve serve_idle "$SERVE_IDLE" 1s
wait_http "http://127.0.0.1:$SERVE_IDLE/livez" 200
SOAK_START=$SECONDS
SOAK_SECONDS=$(python3 -c "print(round(float('$SOAK_MINUTES') * 60))")
rss_of() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_of() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
(
    sleep 2 # the first rounds have completed
    while kill -0 "$PID_SERVE_IDLE" 2>/dev/null; do
        echo "$((SECONDS - SOAK_START)) $(rss_of "$PID_SERVE_IDLE") $(ls "/proc/$PID_SERVE_IDLE/fd" | wc -l)"
        sleep 10
    done
) >"$WORK/idle-rss.txt" 2>/dev/null &
PIDS+=($!)

# --- 1. time to a verdict against one loopback NTP source -------------------------
log "1. check vs chronyd -Q ($ROUNDS rounds x $RUNS runs, interleaved by round)"
for r in $(seq "$ROUNDS"); do
    hyperfine -N -i --style none --warmup 3 --runs "$RUNS" --export-json "$WORK/ntp-$r.json" \
        -n check "$BIN check --sources ntp://127.0.0.1:$NTP0" \
        -n chronyd-Q "chronyd -Q -f /dev/null 'server 127.0.0.1 port $NTP0 iburst maxsamples 1'" \
        -n version "$BIN --version" \
        -n check-shifted "$BIN check --sources ntp://127.0.0.1:$NTP1" \
        -n chronyd-Q-shifted "chronyd -Q -f /dev/null 'server 127.0.0.1 port $NTP1 iburst maxsamples 1'" \
        >/dev/null 2>&1
done
# RTT, offsets and the shifted error as each tool reports them.
for i in $(seq "$HTTP_RUNS"); do
    "$BIN" check --sources "ntp://127.0.0.1:$NTP0" --output json >>"$WORK/ntp0-json.txt" || true
    "$BIN" check --sources "ntp://127.0.0.1:$NTP1" --output json >>"$WORK/ntp1-json.txt" || true
    chronyd -Q -f /dev/null "server 127.0.0.1 port $NTP1 iburst maxsamples 1" 2>&1 |
        sed -n 's/.*System clock wrong by \([-0-9.]*\) seconds.*/\1/p' >>"$WORK/chronyq1.txt" || true
done

# --- 2. HTTP Date against nginx shifted by -600.25 s -------------------------------
log "2. HTTP Date: check vs htpdate ($HTTP_RUNS runs each per shift, alternating)"
URL=http://127.0.0.1:$HTTP_SHIFTED/
http_runs() { # url suffix
    local i t0 t1 out
    for i in $(seq "$HTTP_RUNS"); do
        t0=$EPOCHREALTIME
        out=$("$BIN" check --sources "$1" --output json 2>/dev/null || true)
        t1=$EPOCHREALTIME
        echo "$t0 $t1 $out" >>"$WORK/http-check$2.txt"
        t0=$EPOCHREALTIME
        out=$(htpdate -q -d -p 4 "$1" 2>&1 | sed -n 's/^offset: \([-0-9.]*\).*/\1/p' || true)
        t1=$EPOCHREALTIME
        echo "$t0 $t1 ${out:-nan}" >>"$WORK/http-htpdate$2.txt"
    done
}
http_runs "$URL" ""
http_runs "http://127.0.0.1:$HTTP_SHIFTED2/" 2

# --- 3. CPU and peak RSS of whole processes -----------------------------------------
log "3. CPU time and peak RSS"
start_serve serve_load "$SERVE_LOAD" 60s
wait_http "http://127.0.0.1:$SERVE_LOAD/healthz" 200
TIMEFMT='%e %U %S %M'
for i in $(seq "$RUNS"); do
    /usr/bin/time -f "$TIMEFMT" -a -o "$WORK/time-check.txt" \
        "$BIN" check --sources "ntp://127.0.0.1:$NTP0" >/dev/null 2>&1 || true
    /usr/bin/time -f "$TIMEFMT" -a -o "$WORK/time-health.txt" \
        "$BIN" health "http://127.0.0.1:$SERVE_LOAD/healthz" >/dev/null 2>&1 || true
done
for i in $(seq "$HTTP_RUNS"); do
    /usr/bin/time -f "$TIMEFMT" -a -o "$WORK/time-check-http.txt" \
        "$BIN" check --sources "$URL" >/dev/null 2>&1 || true
    # HTTPS with TLS 1.2 only (the compiled-in webpki roots are loaded as well as the CA file).
    /usr/bin/time -f "$TIMEFMT" -a -o "$WORK/time-check-https.txt" \
        "$BIN" check --sources "https://localhost:$HTTPS/" --ca-file "$WORK/nginx-tls12/ca.pem" \
        --output json >>"$WORK/https-json.txt" 2>/dev/null || true
done
# /usr/bin/time prints CPU in 10 ms steps; hyperfine's user/system means (from rusage) resolve µs.
hyperfine -N -i --style none --warmup 5 --runs $((RUNS * 3)) --export-json "$WORK/cpu.json" \
    -n health "$BIN health http://127.0.0.1:$SERVE_LOAD/healthz" >/dev/null 2>&1
hyperfine -N -i --style none --runs "$HTTP_RUNS" --export-json "$WORK/cpu-http.json" \
    -n check-http "$BIN check --sources $URL" >/dev/null 2>&1

# --- 4b. /healthz throughput beside nginx's static 204 ---------------------------------
log "4. wrk -c 64 -t 2 -d $WRK_DURATION ($WRK_ROUNDS rounds: nginx 1 worker, serve, nginx 2 workers)"
for r in $(seq "$WRK_ROUNDS"); do
    wrk -c 64 -t 2 -d "$WRK_DURATION" --latency "http://127.0.0.1:$NGINX1/" >"$WORK/wrk-nginx1-$r.txt" 2>&1
    wrk -c 64 -t 2 -d "$WRK_DURATION" --latency "http://127.0.0.1:$SERVE_LOAD/healthz" >"$WORK/wrk-serve-$r.txt" 2>&1
    wrk -c 64 -t 2 -d "$WRK_DURATION" --latency "http://127.0.0.1:$NGINX2/" >"$WORK/wrk-nginx2-$r.txt" 2>&1
done
echo "$(rss_of "$PID_SERVE_LOAD") $(hwm_of "$PID_SERVE_LOAD")" >"$WORK/serve-load-rss.txt"

# --- 4a. finish the idle soak ------------------------------------------------------------
left=$((SOAK_SECONDS - (SECONDS - SOAK_START)))
if ((left > 0)); then
    log "4. idle serve: waiting ${left}s more for the ${SOAK_MINUTES}-minute RSS soak"
    sleep "$left"
fi
echo "$((SECONDS - SOAK_START)) $(rss_of "$PID_SERVE_IDLE") $(ls "/proc/$PID_SERVE_IDLE/fd" | wc -l)" >>"$WORK/idle-rss.txt"
hwm_of "$PID_SERVE_IDLE" >"$WORK/idle-hwm.txt"
curl -s "http://127.0.0.1:$SERVE_IDLE/metrics" >"$WORK/idle-metrics.txt" || true

# --- 5. sizes ------------------------------------------------------------------------------
stat -c %s "$BIN" >"$WORK/size.txt"
file -b "$BIN" >"$WORK/file.txt" 2>/dev/null || echo "?" >"$WORK/file.txt"
{ docker image ls skewguard --format '{{.Repository}}:{{.Tag}} {{.Size}} {{.ID}}' 2>/dev/null || true; } >"$WORK/image.txt"

# --- report --------------------------------------------------------------------------------
{
    echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "versions: $("$BIN" --version); $(chronyd -v | head -1 | cut -d' ' -f1-4); $(nginx -v 2>&1); htpdate $(htpdate -h 2>&1 | sed -n 's/^htpdate version //p'); $(hyperfine --version); wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
} >"$WORK/machine.txt"

python3 - "$WORK" "$SHIFT_NTP" "$SHIFT_HTTP" "$SHIFT_HTTP2" "$SOAK_MINUTES" "$ROUNDS" "$RUNS" "$HTTP_RUNS" "$WRK_ROUNDS" "$WRK_DURATION" <<'PY' | tee "${OUT:-/dev/null}"
import json, os, re, statistics as st, sys
work, shift_ntp, shift_http, shift_http2, soak_min, rounds, runs, http_runs, wrk_rounds, wrk_dur = sys.argv[1:]
shift_ntp, shift_http, shift_http2 = float(shift_ntp), float(shift_http), float(shift_http2)
P = lambda n: os.path.join(work, n)
med = st.median
rows = []
def row(what, value, target="", ok=None):
    mark = "" if ok is None else (" ✅" if ok else " ❌")
    rows.append(f"| {what} | {value} | {target}{mark} |")
def ms(s): return f"{s*1e3:.2f} ms"

# 1. NTP time to verdict
times = {}
for r in range(1, int(rounds) + 1):
    for res in json.load(open(P(f"ntp-{r}.json")))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
m = {k: med(v) for k, v in times.items()}
def jl(name):
    out = []
    for line in open(P(name)):
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
j0, j1 = jl("ntp0-json.txt"), jl("ntp1-json.txt")
rtt = med([s["sources"][0]["rtt_seconds"] for s in j0 if s["sources"][0]["rtt_seconds"] is not None])
floor = m["version"] + rtt
row("`check` vs loopback chronyd, wall (median of %d)" % len(times["check"]), ms(m["check"]))
row("`chronyd -Q … maxsamples 1`, wall", ms(m["chronyd-Q"]))
row("**ratio check / chronyd -Q**", f"{m['check']/m['chronyd-Q']:.4f} (1/{m['chronyd-Q']/m['check']:.0f})", "≤ 0.1", m["check"] <= 0.1 * m["chronyd-Q"])
row("floor: `skewguard --version` + reported RTT", f"{ms(m['version'])} + {rtt*1e6:.0f} µs = {ms(floor)}")
row("**check − floor**", ms(m["check"] - floor), "within a few ms", m["check"] - floor <= 3e-3)
row("`check` vs chronyd shifted %+g s, wall" % shift_ntp, f"{ms(m['check-shifted'])} vs chronyd -Q {ms(m['chronyd-Q-shifted'])}")
e_sg = [abs(s["offset_seconds"] - shift_ntp) for s in j1 if s.get("offset_seconds") is not None]
cq = [float(x) for x in open(P("chronyq1.txt")).read().split()]
e_cq = [abs(x - shift_ntp) for x in cq]
if e_sg and e_cq:
    row("NTP error vs %+g s: check / chronyd -Q (median, max of %d)" % (shift_ntp, len(e_sg)),
        f"{med(e_sg)*1e6:.0f} / {max(e_sg)*1e6:.0f} µs vs {med(e_cq)*1e6:.0f} / {max(e_cq)*1e6:.0f} µs")

# 2. HTTP Date
def http(suffix, shift_http):
  sg_err, sg_t, ht_err, ht_t, sg_unc, honest = [], [], [], [], [], []
  for line in open(P(f"http-check{suffix}.txt")):
    t0, t1, js = line.split(" ", 2)
    sg_t.append(float(t1) - float(t0))
    try:
        # The bisection's estimate (nginx stamps Date from its live clock), and
        # whether the honest interval that votes holds the truth.
        d = json.loads(js); src = d["sources"][0]
        sg_err.append(abs(src["estimate_seconds"] - shift_http)); sg_unc.append(src["estimate_uncertainty_seconds"])
        honest.append((abs(d["offset_seconds"] - shift_http) <= d["uncertainty_seconds"], d["uncertainty_seconds"]))
    except Exception:
        sg_err.append(float("inf")); sg_unc.append(0.0); honest.append((False, 0.0))
  for line in open(P(f"http-htpdate{suffix}.txt")):
    t0, t1, off = line.split()
    ht_t.append(float(t1) - float(t0))
    ht_err.append(abs(float(off) - shift_http) if off != "nan" else float("inf"))
  row("HTTP Date vs nginx %+g s: `check` estimate \\|error\\| median / max (n=%d)" % (shift_http, len(sg_err)),
      f"{med(sg_err)*1e3:.2f} / {max(sg_err)*1e3:.2f} ms (estimate ± {med(sg_unc)*1e3:.1f} ms, inside {sum(e <= u for e, u in zip(sg_err, sg_unc))}/{len(sg_err)}; honest interval ± {med([u for _, u in honest])*1e3:.0f} ms, truth inside {sum(h for h, _ in honest)}/{len(honest)})", "≤ 10 ms", max(sg_err) <= 0.010)
  row("… `htpdate -q -d -p 4` \\|error\\| median / max", f"{med(ht_err)*1e3:.2f} / {max(ht_err)*1e3:.2f} ms",
      "check better", med(sg_err) <= med(ht_err))
  row("… wall: `check` / htpdate, median (max)", f"{med(sg_t):.3f} s ({max(sg_t):.3f}) / {med(ht_t):.3f} s ({max(ht_t):.3f}); ratio {med(sg_t)/med(ht_t):.2f}",
      "check ≤ 2 s, faster", max(sg_t) <= 2.0 and med(sg_t) < med(ht_t))
http("", shift_http)
http("2", shift_http2)

# 3. CPU and RSS
def tfile(name):
    rs = [l.split() for l in open(P(name)) if re.match(r"^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$", l.strip())]
    return [float(r[1]) + float(r[2]) for r in rs], [int(r[3]) for r in rs]
cpu_json = {r["command"]: r for r in json.load(open(P("cpu.json")))["results"]}
ntp_cpu = med([r["user"] + r["system"] for rr in range(1, int(rounds) + 1)
               for r in json.load(open(P(f"ntp-{rr}.json")))["results"] if r["command"] == "check"])
_, rss_check = tfile("time-check.txt")
_, rss_http = tfile("time-check-http.txt")
_, rss_health = tfile("time-health.txt")
kib = lambda k: f"{k/1024:.2f} MiB"
row("`check` (NTP) CPU user+sys (hyperfine mean) / peak RSS (max of %d)" % len(rss_check), f"{ntp_cpu*1e3:.2f} ms / {kib(max(rss_check))}", "RSS < 8 MiB", max(rss_check) < 8192)
c = json.load(open(P("cpu-http.json")))["results"][0]
row("`check` (HTTP, 2 s budget) CPU / peak RSS", f"{(c['user']+c['system'])*1e3:.2f} ms / {kib(max(rss_http))}", "RSS < 8 MiB", max(rss_http) < 8192)
_, rss_https = tfile("time-check-https.txt")
https_ok = sum('"status":"ok"' in l for l in open(P("https-json.txt")))
row("`check` (HTTPS, TLS 1.2-only nginx) peak RSS (max of %d; %d answered ok)" % (len(rss_https), https_ok), kib(max(rss_https)), "RSS < 8 MiB", max(rss_https) < 8192 and https_ok == len(rss_https))
h = cpu_json["health"]
hcpu = h["user"] + h["system"]
row("`health` vs serve: CPU user+sys / peak RSS / wall", f"{hcpu*1e3:.2f} ms / {kib(max(rss_health))} / {ms(h['median'])}", "< 3 ms, < 4 MiB", hcpu < 3e-3 and max(rss_health) < 4096)

# 4. serve
samples = [tuple(map(int, l.split())) for l in open(P("idle-rss.txt")) if len(l.split()) == 3]
first, last = samples[0], samples[-1]
mx = max(s[1] for s in samples)
hwm = int(open(P("idle-hwm.txt")).read().split()[0])
rounds_ok = sum(float(l.split()[-1]) for l in open(P("idle-metrics.txt")) if l.startswith("skewguard_measurements_total{") and 'result="ok"' in l)
row(f"`serve` idle RSS (INTERVAL=1s): at {first[0]} s / at {last[0]} s / max of {len(samples)} samples",
    f"{kib(first[1])} / {kib(last[1])} / {kib(mx)} (HWM {kib(hwm)}; fds {first[2]}→{last[2]}; {rounds_ok:.0f} ok rounds)",
    "< 10 MiB, flat", mx < 10240 and last[1] - first[1] <= 256)
def wrk(name):
    rps, p99, errs = [], [], 0
    for r in range(1, int(wrk_rounds) + 1):
        t = open(P(f"wrk-{name}-{r}.txt")).read()
        rps.append(float(re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1)))
        mm = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)\b", t)
        p99.append(float(mm.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[mm.group(2)])
        e = re.search(r"Non-2xx or 3xx responses: (\d+)", t); errs += int(e.group(1)) if e else 0
        e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
        errs += sum(map(int, e.groups())) if e else 0
    return med(rps), med(p99), errs
s_rps, s_p99, s_err = wrk("serve")
n1_rps, n1_p99, n1_err = wrk("nginx1")
n2_rps, n2_p99, n2_err = wrk("nginx2")
row(f"`/healthz` wrk -c 64 -t 2 -d {wrk_dur}: req/s, p99 (median of {wrk_rounds})", f"{s_rps:,.0f} req/s, p99 {s_p99:.2f} ms ({s_err} errors/non-2xx)")
row("nginx `return 204`, worker_processes 1", f"{n1_rps:,.0f} req/s, p99 {n1_p99:.2f} ms ({n1_err} errors)")
row("nginx `return 204`, worker_processes 2", f"{n2_rps:,.0f} req/s, p99 {n2_p99:.2f} ms ({n2_err} errors)")
row("**ratio /healthz / nginx (1 worker; 2 workers)**", f"{s_rps/n1_rps:.2f}; {s_rps/n2_rps:.2f}", "≥ 0.5", s_rps >= 0.5 * n1_rps)
lr = open(P("serve-load-rss.txt")).read().split()
row("`serve` RSS after the wrk runs (now / HWM)", f"{kib(int(lr[0]))} / {kib(int(lr[1]))}")

# 5. sizes
size = int(open(P("size.txt")).read())
ft = open(P("file.txt")).read()
kind = ", ".join(k for k in ("static-pie linked", "statically linked", "dynamically linked", "stripped") if k in ft)
row("binary size (%s)" % kind, f"{size:,} bytes ({size/1048576:.3f} MiB)", "< 3,145,728", size < 3145728)
img = open(P("image.txt")).read().strip()
row("docker image `skewguard`", img or "absent (no image named skewguard)")

print(open(P("machine.txt")).read().strip().replace("\n", "  \n"))
print(f"\nparameters: ROUNDS={rounds} RUNS={runs} HTTP_RUNS={http_runs} WRK_ROUNDS={wrk_rounds} SOAK_MINUTES={soak_min}\n")
print("| measurement | result | target |")
print("| --- | --- | --- |")
print("\n".join(rows))
PY

# --- coverage: truth inside the honest interval per server, fake behaviour, CPU saturation -----
if [[ ${COVERAGE:-1} == 1 ]]; then
    log "coverage benchmarks (bench/coverage.sh)"
    bash "$ROOT/bench/coverage.sh" || log "bench/coverage.sh failed"
fi

# --- NTS: skewguard check vs chronyd -Q against loopback chronyd NTS, size, round cost -----
if [[ ${NTS:-1} == 1 ]]; then
    log "NTS benchmarks (bench/nts.sh)"
    BIN=$BIN bash "$ROOT/bench/nts.sh" || log "bench/nts.sh failed"
fi

# --- Fleet: probes under a flood (beside nginx), holdover, drift estimate vs true rate ----------
if [[ ${FLEET:-1} == 1 ]]; then
    log "fleet benchmarks (bench/fleet.py)"
    python3 "$ROOT/bench/fleet.py" --bin "$BIN" || log "bench/fleet.py failed"
fi
