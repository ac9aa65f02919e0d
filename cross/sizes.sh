#!/bin/sh
# cross/sizes.sh: stripped size of the shipped release binary with and without the RabbitMQ
# bridge, per target. Run from the repository root (or `make sizes`).
#
# Each build is `make cross-<arch> CARGO_FEATURES=...` (cross/cross.mk: the release profile
# as shipped, static musl, strip = true, zig for the ARM triples), one at a time under `nice`;
# the binaries land in $DIST_ROOT/<variant>/viprouter-<triple>. Prints a Markdown table of
# bytes, and the difference to the build without the bridge.
#
# Variants (Cargo.toml [features]):
#   default  bench + rabbitmq + rabbitmq-tls   (what `make cross` and the .deb ship)
#   plain    bench + rabbitmq                  (PLAIN only, VOLTTRON's `ssl: false`)
#   none     bench                             (no bridge)
#
# Knobs: ARCHES (default "aarch64 armv7 armv6 amd64"), VARIANTS (default "default plain none"),
# DIST_ROOT (default target/sizes), MAKE (default make), NO_BUILD=1 (print the table from the
# binaries already built). Everything else (ZIG_VENV, CARGO_TARGET_DIR, ...) passes through
# the environment to cross/cross.mk.
set -eu

ARCHES=${ARCHES:-"aarch64 armv7 armv6 amd64"}
VARIANTS=${VARIANTS:-"default plain none"}
DIST_ROOT=${DIST_ROOT:-target/sizes}
MAKE=${MAKE:-make}

features() {
    case "$1" in
        default) echo "" ;;
        plain) echo "--no-default-features --features bench,rabbitmq" ;;
        none) echo "--no-default-features --features bench" ;;
        *) echo "cross/sizes.sh: unknown variant '$1'" >&2; exit 2 ;;
    esac
}

triple() {
    case "$1" in
        aarch64) echo aarch64-unknown-linux-musl ;;
        armv7) echo armv7-unknown-linux-musleabihf ;;
        armv6) echo arm-unknown-linux-musleabihf ;;
        amd64) echo x86_64-unknown-linux-musl ;;
        *) echo "cross/sizes.sh: unknown arch '$1'" >&2; exit 2 ;;
    esac
}

if [ -z "${NO_BUILD:-}" ]; then
    for a in $ARCHES; do
        for v in $VARIANTS; do
            start=$(date +%s)
            echo "== cross-$a, $v ($(features "$v"))" >&2
            nice -n 10 $MAKE --no-print-directory "cross-$a" \
                CARGO_FEATURES="$(features "$v")" DIST_DIR="$DIST_ROOT/$v" >&2
            echo "== cross-$a, $v: $(( $(date +%s) - start )) s" >&2
        done
    done
fi

size_of() { # arch variant -> bytes or "–"
    f="$DIST_ROOT/$2/viprouter-$(triple "$1")"
    if [ -f "$f" ]; then stat -c %s "$f"; else echo "–"; fi
}
delta() { # bytes base -> "+N" or ""
    case "$1$2" in *–*) echo "" ;; *) echo " (+$(( $1 - $2 )))" ;; esac
}

printf '| target | %s |\n' "$(echo "$VARIANTS" | sed 's/ / | /g')"
printf '|---|%s\n' "$(for v in $VARIANTS; do printf -- '---|'; done)"
for a in $ARCHES; do
    base=$(size_of "$a" none)
    row=""
    for v in $VARIANTS; do
        s=$(size_of "$a" "$v")
        if [ "$v" = none ]; then row="$row | $s"; else row="$row | $s$(delta "$s" "$base")"; fi
    done
    printf '| %s%s |\n' "$(triple "$a")" "$row"
done
