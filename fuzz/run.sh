#!/usr/bin/env bash
# Time-bounded fuzzing: fuzz/run.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of fuzz_targets/) for SECONDS (default 60) of
# fuzzing after one build, then prints a summary. Exits non-zero if any target
# found a crash (the input is saved under fuzz/artifacts/<target>/) or failed
# to build. Non-interactive; safe to run again.
#
# The committed seeds (corpus/<target>) are read only; what the fuzzer learns
# goes to work/<target> (git-ignored; cache it between CI runs to start warm).
#
# Toolchain: nightly with AddressSanitizer when `cargo +nightly` works, else
# the default toolchain without a sanitizer (libFuzzer's coverage guidance and
# Rust's own checks still apply). Override with FUZZ_TOOLCHAIN=stable|nightly
# and FUZZ_SANITIZER=address|none.
#
# Only scripts/static-build.sh links statically (+crt-static, which sanitizer
# builds cannot); no cargo configuration sets it, so the fuzz binaries link
# dynamically; nothing to undo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

SECONDS_PER_TARGET=${1:-60}
shift || true
if [[ ! "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
if (($# > 0)); then
    TARGETS=("$@")
else
    TARGETS=()
    for f in fuzz_targets/*.rs; do TARGETS+=("$(basename "$f" .rs)"); done
fi

now() { date +%s; }

# --- toolchain and cargo-fuzz ----------------------------------------------------
TOOLCHAIN=${FUZZ_TOOLCHAIN:-}
if [[ -z "$TOOLCHAIN" ]]; then
    if cargo +nightly --version >/dev/null 2>&1; then TOOLCHAIN=nightly; else TOOLCHAIN=stable; fi
fi
CARGO=(cargo)
if [[ "$TOOLCHAIN" == nightly ]] || cargo "+$TOOLCHAIN" --version >/dev/null 2>&1; then
    CARGO=(cargo "+$TOOLCHAIN")
fi
SANITIZER=${FUZZ_SANITIZER:-}
if [[ -z "$SANITIZER" ]]; then
    if [[ "$TOOLCHAIN" == nightly ]]; then SANITIZER=address; else SANITIZER=none; fi
fi

t0=$(now)
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "=== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version
"${CARGO[@]}" --version
echo "sanitizer: $SANITIZER"

# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash.
FUZZ_FLAGS=(-a --sanitizer "$SANITIZER")

echo "=== building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
    "${CARGO[@]}" fuzz build "${FUZZ_FLAGS[@]}" "$t"
done
echo "=== install and build: $(($(now) - t0))s"

# --- fuzzing ---------------------------------------------------------------------
mkdir -p work/logs
declare -a SUMMARY=()
failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    [[ -f "dict/$t.dict" ]] && args+=(-dict="dict/$t.dict")
    log="work/logs/$t.log"
    echo "=== fuzzing $t for ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
    set +e
    # First corpus directory is where new inputs go; the seeds stay untouched.
    "${CARGO[@]}" fuzz run "${FUZZ_FLAGS[@]}" "$t" "work/$t" "corpus/$t" -- "${args[@]}" >"$log" 2>&1
    rc=$?
    set -e
    # Last value of a libFuzzer status field ("cov: 123"); empty if never printed.
    field() { { grep -o "$1: [0-9]*" "$log" || true; } | tail -n1 | cut -d' ' -f2; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(field cov)
    ft=$(field ft)
    corp=$(field corp)
    if ((rc == 0)); then
        status=ok
    else
        status="FAILED (exit $rc)"
        failed=1
        # The panic, the input and how to reproduce it.
        grep -E -A4 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | head -n 20 || true
        grep -E "Test unit written to|cargo fuzz run" "$log" || tail -n 30 "$log"
    fi
    SUMMARY+=("$(printf '%-12s %-18s runs %-10s cov %-6s features %-6s corpus %s' \
        "$t" "$status" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done

echo "=== fuzz summary (${SECONDS_PER_TARGET}s per target, $TOOLCHAIN, sanitizer $SANITIZER)"
printf '%s\n' "${SUMMARY[@]}"
exit "$failed"
