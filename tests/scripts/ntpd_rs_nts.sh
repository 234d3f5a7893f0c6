#!/usr/bin/env bash
# Interoperability: skewguard's nts:// against ntpd-rs's NTS server (not part of cargo test).
#
#   cargo install ntpd --locked --root /tmp/ntpd-rs     # ntpd-rs 1.9, ~9 minutes here
#   tests/scripts/ntpd_rs_nts.sh                        # exits 0 if the reply is authenticated
#
# ntp-daemon runs in a new user namespace (no CAP_SYS_TIME over this machine) as an NTS-KE
# server with a certificate from a throw-away openssl CA, serving its own clock
# (local-stratum 1). libfaketime shifts its logs but not its NTP timestamps, which come from
# the kernel, so the offset measured is ~0. Knobs: NTPD, BIN, NTP_PORT, KE_PORT, SHIFT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NTPD=${NTPD:-/tmp/ntpd-rs/bin/ntp-daemon}
BIN=${BIN:-$PWD/target/static/skewguard}   # scripts/static-build.sh, any architecture
[[ -x $NTPD ]] || { echo "ntpd_rs_nts: $NTPD not found (cargo install ntpd --locked --root /tmp/ntpd-rs)" >&2; exit 2; }
W=$(mktemp -d /tmp/skewguard-ntpdrs.XXXXXX); trap 'kill $PID 2>/dev/null; rm -rf "$W"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=ca -keyout $W/ca.key -out $W/ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout $W/key.pem -out $W/leaf.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >$W/leaf.ext
openssl x509 -req -in $W/leaf.csr -CA $W/ca.pem -CAkey $W/ca.key -CAcreateserial -days 30 -extfile $W/leaf.ext -out $W/cert.pem 2>/dev/null
cat >$W/ntp.toml <<C
[observability]
log-level = "warn"
[[server]]
listen = "127.0.0.1:${NTP_PORT:-11141}"
[[nts-ke-server]]
listen = "127.0.0.1:${KE_PORT:-11142}"
certificate-chain-path = "$W/cert.pem"
private-key-path = "$W/key.pem"
ntp-port = ${NTP_PORT:-11141}
[synchronization]
local-stratum = 1
C
# No CAP_SYS_TIME: in a new user namespace clock changes fail with EPERM.
# libfaketime in this machine's multiarch directory (x86_64-linux-gnu, aarch64-linux-gnu, …).
FAKETIME_LIB=${FAKETIME_LIB:-$(ls /usr/lib/*-linux-gnu*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n1 || true)}
FAKETIME=${SHIFT:-+1200} LD_PRELOAD=$FAKETIME_LIB \
    unshare --user --map-root-user "$NTPD" -c $W/ntp.toml >$W/log 2>&1 &
PID=$!
sleep 1
out=$(env -i SKEWGUARD_SOURCES=nts://localhost:${KE_PORT:-11142} SKEWGUARD_CA_FILE=$W/ca.pem SKEWGUARD_MAX_SKEW=4m "$BIN" check --output json || true)
echo "$out"
if ! grep -q '"authenticated":true' <<<"$out"; then
    echo "ntpd_rs_nts: no authenticated measurement; ntp-daemon log:" >&2
    tail -20 "$W/log" >&2
    exit 1
fi
