#!/bin/sh
# Packages a skewguard binary built on this machine into the Dockerfile's own
# runtime stage, without a registry and without Rust in Docker:
#
#   scripts/static-build.sh && scripts/local-image.sh skewguard:0.1.0 [DOCKER BUILD ARGS…]
#
# It takes the Dockerfile's global ARGs and its last stage verbatim and swaps
# only the source of that stage's one `COPY --from=builder SRC DEST` for the
# local binary (default target/static/skewguard; --binary PATH for another),
# so there is one set of runtime directives. The image is built for this
# machine's architecture with whatever `docker build` is installed (the legacy
# builder will do). tests/it/docker.rs builds its image this way.
#
#   scripts/local-image.sh --print [-f DOCKERFILE]   prints the derived Dockerfile
set -eu
cd "$(dirname "$0")/.."

dockerfile=Dockerfile
binary=${CARGO_TARGET_DIR:-target}/static/skewguard
print=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --print) print=yes; shift ;;
        -f) dockerfile=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        *) break ;;
    esac
done

derive() {
    awk '
    function fail(msg) { print "local-image: " FILENAME ": " msg > "/dev/stderr"; failed = 1; exit 2 }
    {
        line = $0
        trimmed = line; sub(/^[ \t]+/, "", trimmed); sub(/[ \t]+$/, "", trimmed)
        comment = (substr(trimmed, 1, 1) == "#")
        keyword = ""
        if (!continued && trimmed != "" && !comment) { split(trimmed, w, /[ \t]+/); keyword = toupper(w[1]) }
        if (!comment) continued = (substr(trimmed, length(trimmed), 1) == "\\")
        n++; text[n] = line; kw[n] = keyword
        if (keyword == "FROM") { froms++; if (!first) first = n; last = n }
    }
    END {
        if (failed) exit 2
        if (froms < 2) fail("expected a builder stage and a runtime stage")
        split(text[last], w, /[ \t]+/)
        image = w[2]; if (image == "") image = w[3]
        if (image != "scratch") fail("the last stage starts FROM " image ", not FROM scratch")
        out = "# Derived by scripts/local-image.sh from the Dockerfile'"'"'s runtime stage.\n"
        for (i = 1; i < first; i++) if (kw[i] == "ARG") out = out text[i] "\n"
        replaced = 0
        for (i = last; i <= n; i++) {
            if (kw[i] == "RUN") fail("the runtime stage has a RUN (scratch has no shell)")
            if (kw[i] == "COPY" && index(text[i], "--from=builder")) {
                t = text[i]; sub(/[ \t]+$/, "", t)
                if (substr(t, length(t), 1) == "\\") fail("keep `COPY --from=builder` on one line")
                m = split(t, w, /[ \t]+/); flags = ""; operands = 0; dest = ""
                for (j = 1; j <= m; j++) {
                    if (w[j] == "" || toupper(w[j]) == "COPY") continue
                    if (substr(w[j], 1, 2) == "--") { if (w[j] !~ /^--from=/) flags = flags " " w[j] }
                    else { operands++; dest = w[j] }
                }
                if (operands != 2) fail("`" t "`: expected one source and one destination")
                out = out "COPY" flags " skewguard " dest "\n"
                replaced++
                continue
            }
            out = out text[i] "\n"
        }
        if (replaced != 1) fail("the runtime stage has " replaced " `COPY --from=builder` lines; expected exactly one")
        printf "%s", out
    }' "$dockerfile"
}

if [ -n "$print" ]; then
    derive
    exit 0
fi

[ "$#" -ge 1 ] || { echo "usage: scripts/local-image.sh [--binary PATH] TAG [DOCKER BUILD ARGS…]" >&2; exit 2; }
tag=$1
shift
[ -x "$binary" ] || {
    echo "local-image: no binary at $binary: run scripts/static-build.sh first" >&2
    exit 2
}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
derive > "$context/Dockerfile"
cp "$binary" "$context/skewguard"
docker build --tag "$tag" "$@" "$context"
