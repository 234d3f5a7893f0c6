#!/bin/sh
# Builds the static release binary of skewguard for this machine's
# architecture (the host triple that `rustc -vV` reports: x86_64, aarch64, …),
# or for the target triple given as the first argument (the Dockerfile's
# cross-compiling builder passes one), and copies it to a path that names no
# architecture; the path is the one line it prints on stdout:
#
#   scripts/static-build.sh [CARGO FLAGS…]          →   target/static/skewguard
#   scripts/static-build.sh TRIPLE [CARGO FLAGS…]   →   target/static/TRIPLE/skewguard
#                                                       (the host's triple: as above)
#
# (under `$CARGO_TARGET_DIR` if that is set). Further arguments go to
# `cargo build` (e.g. --locked --offline). Cross builds need the target's
# linker and C compiler named the cargo/cc way (Debian: gcc-ARCH-linux-gnu and
# libc6-dev-DEBARCH-cross; rustup target add TRIPLE), as the Dockerfile does:
#   aarch64 on x86_64: CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
#       CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc scripts/static-build.sh aarch64-unknown-linux-gnu
#   x86_64 on aarch64: CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
#       CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc scripts/static-build.sh x86_64-unknown-linux-gnu
#
# Static glibc (`crt-static`) with packed relative relocations
# (`-z pack-relative-relocs`, binutils >= 2.38, glibc >= 2.36: the static-pie's
# ~120 KB relocation table in ~1.4 KB, ASLR kept), and identical code folding
# where the linker can (below). The explicit --target is what
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

# Identical code folding (`--icf=all`) when the linker is LLD, as rustc's own
# for x86_64-unknown-linux-gnu is since Rust 1.90: LTO leaves many generic
# copies that compile to the same bytes (~26 KB). GNU ld has no such option,
# so it is asked for only when a probe link with it succeeds (same rustc,
# target and CARGO_TARGET_<TRIPLE>_LINKER as the build).
icf=
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
linker_var=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER
eval "linker=\${$linker_var:-}"
echo 'fn main() {}' > "$probe/p.rs"
if rustc --target "$target" ${linker:+-C linker="$linker"} -C link-arg=-Wl,--icf=all \
    -o "$probe/p" "$probe/p.rs" 2>/dev/null; then
    icf=" -C link-arg=-Wl,--icf=all"
fi

# No unwind tables (`.eh_frame` and its index `.eh_frame_hdr`, ~378 KB of
# ~3.4 MB): with panic = "abort" nothing unwinds, and their one reader is the
# backtrace RUST_BACKTRACE asks for after a panic, which in this stripped
# binary lists only `<unknown>` addresses (now it lists none). rustc emits
# them whatever `-C force-unwind-tables=no` says (code instantiated from std's
# MIR keeps its personality routine), so the linker drops them: a script that
# INSERTs a /DISCARD/ rule into the default layout, which LLD and GNU ld both
# read. Written under the target directory at a fixed path (the path is part
# of RUSTFLAGS, which cargo's fingerprint holds), and asked for only when a
# static probe link with it succeeds: a static link that is not PIE (rustc's
# for aarch64) takes crtbeginT.o, whose code refers to its own `.eh_frame`,
# and GNU ld then refuses the discard, so that build keeps its tables.
dir=${CARGO_TARGET_DIR:-target}
case $dir in /*) static=$dir/static ;; *) static=$PWD/$dir/static ;; esac
unwind=
script=$static/discard-unwind-tables.ld
mkdir -p "$static"
printf '%s\n' 'SECTIONS { /DISCARD/ : { *(.eh_frame) } } INSERT AFTER .text;' > "$script"
case $script in
    *[[:space:]]*) ;; # RUSTFLAGS splits on white space
    *) if rustc --target "$target" ${linker:+-C linker="$linker"} -C target-feature=+crt-static \
        -C link-arg=-Wl,-T,"$script" -C link-arg=-Wl,--no-eh-frame-hdr \
        -o "$probe/p" "$probe/p.rs" 2>/dev/null; then
        unwind=" -C link-arg=-Wl,-T,$script -C link-arg=-Wl,--no-eh-frame-hdr"
    fi ;;
esac

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs$icf$unwind" \
    cargo build --release --target "$target" "$@"

# The host's binary at a path that names no architecture; another target's
# beside it under its triple, so a cross build never replaces the host's.
if [ "$target" = "$host" ]; then out=$dir/static/skewguard; else out=$dir/static/$target/skewguard; fi
mkdir -p "$(dirname "$out")"
# Through a temporary name and a rename, so a reader never sees half a binary.
cp "$dir/$target/release/skewguard" "$out.tmp"
mv -f "$out.tmp" "$out"
echo "built for $target:" >&2
echo "$out"
