#!/usr/bin/env bash
# Coverage of the honest intervals (not part of `cargo test`'s default counts): how often the
# truth is inside `offset ± uncertainty`, and how far the offset is from it, per Debian web server
# (under libfaketime, realtime-only sub-second shifts), per fake `Date` behaviour (cached,
# rounded, two backends, stepping back, Age: 0) and for NTP and HTTP under a saturated CPU.
#
#   bench/coverage.sh               # called by bench/run.sh; ~2 minutes
#
# It runs the coverage tests (the modules http_behaviours, web_servers and saturation
# of tests/it/) with more runs per case and collects one JSON line per run
# (SKEWGUARD_COVERAGE_LOG), then prints a Markdown table (also to $OUT if set).
# Knobs: FAKE_RUNS=20 runs per fake behaviour, WEB_RUNS=5 runs per server and shift,
# SAT_ROUNDS=100 rounds each of chrony and nginx under load, HTTP_BUDGET=2s per fake and
# server run (the default of SKEWGUARD_HTTP_BUDGET; the tests alone use 600ms).
# Needs what those tests need: chrony, libfaketime, nginx-light, apache2, lighttpd, python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FAKE_RUNS=${FAKE_RUNS:-20}
WEB_RUNS=${WEB_RUNS:-5}
HTTP_BUDGET=${HTTP_BUDGET:-2s}
SAT_ROUNDS=${SAT_ROUNDS:-100}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# CI=true: a missing server fails instead of skipping, so no case is silently absent.
# The tests are in one binary (tests/it); a filter names them as module::test.
run() { # runs filter [more libtest arguments]
    SKEWGUARD_COVERAGE_LOG=$LOG SKEWGUARD_TEST_RUNS=$1 SKEWGUARD_TEST_HTTP_BUDGET=$HTTP_BUDGET CI=true \
        cargo test -q --test it -- "${@:2}" >&2
}
log "coverage: fake Date servers ($FAKE_RUNS runs per behaviour)"
run "$FAKE_RUNS" http_behaviours::every_behaviour
log "coverage: Debian web servers ($WEB_RUNS runs per server and shift)"
# Every server's *_keeps_the_truth_inside; not the one check beside NTP, which records nothing.
run "$WEB_RUNS" web_servers:: --skip web_servers::lighttpd_and_nginx_timer_beside_an_accurate_ntp_server_are_ok
log "coverage: chrony and nginx with eight busy loops per core ($SAT_ROUNDS rounds each)"
run "$SAT_ROUNDS" saturation::

python3 - "$LOG" <<'PY' | tee "${OUT:-/dev/null}"
import json, statistics, sys
cases = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    cases.setdefault(r["case"], []).append(r)
def ms(x):
    if x >= 0.01:
        return f"{x*1e3:.1f} ms"
    return f"{x*1e3:.2f} ms" if x >= 0.001 else f"{x*1e6:.0f} µs"
print("| case | runs | truth inside | \\|error\\| median / worst | uncertainty (±) median | estimate \\|error\\| median / worst |")
print("| --- | --- | --- | --- | --- | --- |")
for case, rs in cases.items():
    err = [abs(r["offset"] - r["truth"]) for r in rs]
    unc = [r["uncertainty"] for r in rs]
    est = [abs(r["estimate"] - r["truth"]) for r in rs if r["estimate"] is not None]
    inside = sum(r["inside"] for r in rs)
    e = f"{ms(statistics.median(est))} / {ms(max(est))}" if est else "—"
    print(f"| {case} | {len(rs)} | {inside}/{len(rs)} = {100*inside/len(rs):.0f} % | "
          f"{ms(statistics.median(err))} / {ms(max(err))} | {ms(statistics.median(unc))} | {e} |")
PY
