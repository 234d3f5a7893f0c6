#!/bin/sh
# Builds the static release binary of skewguard for this machine's
# architecture (the host triple that `rustc -vV` reports: x86_64, aarch64, …),
# or for the target triple given as the first argument (the Dockerfile's
# cross-compiling builder passes one), and copies it to a path that names no
# architecture:
#
#   scripts/static-build.sh [TARGET] [CARGO FLAGS…]   →   target/static/skewguard
#
# (`$CARGO_TARGET_DIR/static/skewguard` if CARGO_TARGET_DIR is set). Further
# arguments go to `cargo build` (e.g. --locked --offline).
#
# Static glibc (`crt-static`) with packed relative relocations
# (`-z pack-relative-relocs`, binutils >= 2.38, glibc >= 2.36: the static-pie's
# ~120 KB relocation table in ~1.4 KB, ASLR kept). The explicit --target is what
# keeps these flags away from build scripts and proc-macro crates, which cannot
# be static; so no target is pinned in .cargo/config.toml and a plain
# `cargo build` stays an ordinary build for whatever machine runs it.
set -eu
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
target=$host
case "${1:-}" in
    "" | -*) ;;
    *) target=$1; shift ;;
esac
[ -n "$target" ] || { echo "static-build: cannot tell the host triple from rustc -vV" >&2; exit 2; }

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" \
    cargo build --release --target "$target" "$@"

dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$dir/static"
# Through a temporary name and a rename, so a reader never sees half a binary.
cp "$dir/$target/release/skewguard" "$dir/static/.skewguard.tmp"
mv -f "$dir/static/.skewguard.tmp" "$dir/static/skewguard"
echo "$dir/static/skewguard ($target)"
