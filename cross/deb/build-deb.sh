#!/bin/sh
# Assemble viprouter_<version>_<arch>.deb with dpkg-deb alone (no debhelper, no fakeroot:
# --root-owner-group makes every file root:root). Called by `make deb-<arch>` (cross/cross.mk).
#
#   build-deb.sh --bin BINARY --arch DEBARCH --version VERSION-REV --triple TRIPLE --out FILE.deb
set -eu

BIN= ARCH= VERSION= TRIPLE= OUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2 ;;
        --arch) ARCH=$2 ;;
        --version) VERSION=$2 ;;
        --triple) TRIPLE=$2 ;;
        --out) OUT=$2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ -n "$BIN" ] && [ -n "$ARCH" ] && [ -n "$VERSION" ] && [ -n "$OUT" ] || { echo "missing arguments" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
MAINTAINER=${DEB_MAINTAINER:-"viprouter maintainers <viprouter@example.org>"}  # set DEB_MAINTAINER for releases
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"
umask 022

# Payload.
install -D -m 0755 "$BIN" "$STAGE/usr/bin/viprouter"
install -D -m 0644 "$SRC/systemd/viprouter.service" "$STAGE/lib/systemd/system/viprouter.service"
install -D -m 0644 "$SRC/systemd/viprouter.socket" "$STAGE/lib/systemd/system/viprouter.socket"
install -D -m 0644 "$SRC/systemd/viprouter.conf" "$STAGE/etc/viprouter/config"
DOC=$STAGE/usr/share/doc/viprouter
install -D -m 0644 "$SRC/systemd/README.md" "$DOC/README.systemd.md"
install -D -m 0644 "$SRC/cross/README.md" "$DOC/README.cross.md"
[ -f "$SRC/README.md" ] && install -m 0644 "$SRC/README.md" "$DOC/README.md"
cat > "$DOC/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: viprouter
Comment: binary built for ${TRIPLE:-$ARCH}; statically linked (musl) where the triple says so.

Files: *
Copyright: the viprouter authors
License: see the source repository (no license declared in Cargo.toml yet)
COPY
DATE=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'viprouter (%s) unstable; urgency=medium\n\n  * Build for %s.\n\n -- %s  %s\n' \
    "$VERSION" "${TRIPLE:-$ARCH}" "$MAINTAINER" "$DATE" | gzip -9n > "$DOC/changelog.Debian.gz"

# Static musl on purpose (no glibc-version coupling with the board's OS image).
install -d "$STAGE/usr/share/lintian/overrides"
printf '%s\n' "viprouter: statically-linked-binary [usr/bin/viprouter]" \
    "viprouter: shared-library-lacks-prerequisites [usr/bin/viprouter]" \
    > "$STAGE/usr/share/lintian/overrides/viprouter"
chmod 0644 "$STAGE/usr/share/lintian/overrides/viprouter"

# Control area.
mkdir -p "$STAGE/DEBIAN"
install -m 0755 "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$STAGE/DEBIAN/"
echo /etc/viprouter/config > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
# A static musl binary needs no shared libraries; a glibc build needs libc6 (>= pin).
# passwd: groupadd/useradd in postinst.
case "${TRIPLE:-}" in
    *-gnu*) DEPENDS="libc6 (>= ${GLIBC_PIN:-2.28}), passwd" ;;
    *) DEPENDS="passwd" ;;
esac
{
    echo "Package: viprouter"
    echo "Version: $VERSION"
    echo "Architecture: $ARCH"
    echo "Maintainer: $MAINTAINER"
    echo "Installed-Size: $SIZE"
    echo "Depends: $DEPENDS"
    echo "Section: net"
    echo "Priority: optional"
    echo "Description: VOLTTRON VIP message router"
    echo " A single-threaded router for VOLTTRON's VIP protocol over ZeroMQ"
    echo " (ZMTP 3, NULL and CURVE) for building controllers such as Raspberry Pi"
    echo " and BeagleBone. Runs as viprouter.service with VOLTTRON_HOME set to"
    echo " /var/lib/viprouter; configuration in /etc/viprouter/config. Optional"
    echo " socket activation through viprouter.socket."
} > "$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"

mkdir -p "$(dirname "$OUT")"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT" >/dev/null
echo "$OUT: $(stat -c %s "$OUT") bytes"
