#!/usr/bin/env bash
# `make arm64-check`: the device installed from its wheel by firmware_config/install.sh
# inside Debian arm64 root file systems (Bookworm: Python 3.11, Raspberry Pi OS
# Bookworm's; Trixie: Python 3.13), run through qemu user emulation and binfmt_misc.
#
#   sudo firmware_config/arm64-check.sh [SUITE...]      (default: bookworm trixie)
#
# Needs root, mmdebstrap and a mountable binfmt_misc (all Debian). The root file
# systems, Trixie's qemu (10.x: Bookworm's 7.2 segfaults inside ai-edge-litert)
# and the device's aarch64 wheels (fetched by the host's pip) are cached under
# $ARM64_CACHE (/var/cache/atopiscan).
# The host's own binfmt registrations are left as they are: a temporary entry
# for the fetched qemu is added first (the kernel tries the newest entry first)
# and removed at exit. Exit 0: every step passed; 1: a step failed; 3: this
# machine cannot run the check (the reason is printed; exit 0 with ARM64_OPTIONAL=1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${ARM64_CACHE:-/var/cache/atopiscan}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SUITES=("$@")
if [ "${#SUITES[@]}" -eq 0 ]; then
    SUITES=(bookworm trixie)
fi
BINFMT=/proc/sys/fs/binfmt_misc
ENTRY=atopiscan-aarch64
MIRROR=http://deb.debian.org/debian
# What the cached root file system holds: a device image's base. The file name
# carries a digest of this list, so changing it builds a new one.
INCLUDE=python3,python3-venv,python3-pip,ca-certificates,procps,systemd
INCLUDE_KEY="$(echo "$INCLUDE" | sha256sum | cut -c1-8)"
QEMU_DIR="$CACHE/qemu-trixie"
QEMU="$QEMU_DIR/root/usr/bin/qemu-aarch64"
WORK=""

cannot() {
    echo "arm64-check: NOT RUN: this machine cannot run it: $*" >&2
    if [ "${ARM64_OPTIONAL:-0}" = 1 ]; then
        exit 0
    fi
    exit 3
}

# --- what this machine must have ------------------------------------------
[ "$(id -u)" -eq 0 ] || cannot "needs root (mmdebstrap, chroot, binfmt_misc)"
[ "$(uname -m)" = x86_64 ] || cannot "written for an x86_64 host, this is $(uname -m)"
command -v apt-get >/dev/null || cannot "no apt-get: a Debian or Ubuntu host is needed"
if ! command -v mmdebstrap >/dev/null; then
    echo "installing mmdebstrap (apt)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap; } \
        >/dev/null || cannot "mmdebstrap is missing and apt-get could not install it"
fi
if [ ! -w "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
        || cannot "binfmt_misc is not mounted and cannot be (a container without the privilege?)"
fi
[ -x "$PYTHON" ] || cannot "no $PYTHON: run \`make venv\` first (the host builds the wheel and the pack)"
mkdir -p "$CACHE"

# --- Trixie's qemu, fetched and unpacked, not installed -------------------
if [ ! -x "$QEMU" ]; then
    echo "fetching Trixie's qemu-user into $QEMU_DIR"
    mkdir -p "$QEMU_DIR/lists/partial" "$QEMU_DIR/archives/partial"
    echo "deb $MIRROR trixie main" > "$QEMU_DIR/sources.list"
    APT_OPTS=(-o "Dir::Etc::SourceList=$QEMU_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$QEMU_DIR/lists" -o "Dir::Cache::Archives=$QEMU_DIR/archives"
              -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Architectures::=amd64
              -o APT::Sandbox::User=root)
    apt-get "${APT_OPTS[@]}" update -q >/dev/null || cannot "apt-get update for Trixie failed"
    (cd "$QEMU_DIR" && rm -f qemu-user_*.deb && apt-get "${APT_OPTS[@]}" download qemu-user >/dev/null) \
        || cannot "could not download Trixie's qemu-user"
    dpkg-deb -x "$QEMU_DIR"/qemu-user_*.deb "$QEMU_DIR/root"
fi
"$QEMU" --version | head -1

cleanup_work() {
    if [ -n "$WORK" ] && [ -d "$WORK/rootfs" ]; then
        for mnt in dev proc sys opt/wheelhouse; do
            if mountpoint -q "$WORK/rootfs/$mnt"; then
                umount -R -l "$WORK/rootfs/$mnt" || true
            fi
        done
        # Never delete through a bind mount of the host's /dev or /sys.
        if grep -q " $WORK/" /proc/self/mounts; then
            echo "arm64-check: $WORK still has mounts; left in place" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    WORK=""
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    cleanup_work
    if [ -e "$BINFMT/$ENTRY" ]; then
        echo -1 > "$BINFMT/$ENTRY"
    fi
    if [ -n "${HOST_OUT:-}" ]; then
        rm -rf "$HOST_OUT"
    fi
}
trap cleanup EXIT

# F: the kernel opens the interpreter now, so it need not exist inside the chroot.
if [ -e "$BINFMT/$ENTRY" ]; then
    echo -1 > "$BINFMT/$ENTRY"
fi
printf ':%s:M::%s:%s:%s:FP\n' "$ENTRY" \
    '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
    '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
    "$QEMU" > "$BINFMT/register" || cannot "could not register $QEMU with binfmt_misc"

# --- what the host makes: the wheel, a signed tiny pack, a photo, x86's scan ---
HOST_OUT="$(mktemp -d /tmp/atopiscan-arm64-host.XXXXXX)"
echo "host: building the wheel, a signed pack and a photo in $HOST_OUT"
"$PYTHON" "$HERE/arm64_check.py" host "$HOST_OUT"

STATUS=0
RESULTS=()
WHEEL="$(ls "$HOST_OUT"/atopiscan-*.whl)"
for suite in "${SUITES[@]}"; do
    case "$suite" in  # the suite's Python and glibc, for the wheels pip may pick
        bookworm) PYVER=3.11; GLIBC_MINOR=36 ;;
        trixie) PYVER=3.13; GLIBC_MINOR=41 ;;
        *) echo "arm64-check: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
    esac
    TARBALL="$CACHE/arm64-$suite-$INCLUDE_KEY.tar"
    if [ ! -f "$TARBALL" ]; then
        echo "building the $suite arm64 root file system (cached in $TARBALL)"
        start=$(date +%s)
        mmdebstrap --quiet --architectures=arm64 --variant=apt --format=tar --include="$INCLUDE" \
            "$suite" "$TARBALL.tmp" "$MIRROR"
        mv "$TARBALL.tmp" "$TARBALL"
        echo "  $suite root file system built in $(( $(date +%s) - start )) s"
    fi
    WORK="$(mktemp -d /var/tmp/atopiscan-arm64-"$suite".XXXXXX)"
    mkdir "$WORK/rootfs"
    tar -C "$WORK/rootfs" -xf "$TARBALL"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    cp /etc/resolv.conf "$WORK/rootfs/etc/resolv.conf"
    # The device's dependencies as PyPI has them for this suite's Python on aarch64,
    # fetched natively by the host and kept between runs; pip inside reads them
    # (PIP_FIND_LINKS, PIP_NO_INDEX) instead of downloading under emulation.
    WHEELHOUSE="$CACHE/wheels-$suite"
    PLATFORMS=(--platform manylinux2014_aarch64)
    for minor in $(seq 17 "$GLIBC_MINOR"); do
        PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64")
    done
    "$PYTHON" -m pip download --quiet --only-binary=:all: "${PLATFORMS[@]}" --python-version "$PYVER" \
        --implementation cp -d "$WHEELHOUSE" "${WHEEL}[device]"
    rm -f "$WHEELHOUSE"/atopiscan-*.whl
    mkdir -p "$WORK/rootfs/opt/wheelhouse"
    mount --bind "$WHEELHOUSE" "$WORK/rootfs/opt/wheelhouse"
    mount -t proc proc "$WORK/rootfs/proc"
    mount --rbind /sys "$WORK/rootfs/sys"
    mount --rbind /dev "$WORK/rootfs/dev"
    mkdir -p "$WORK/rootfs/opt/check/src"
    cp -r "$HOST_OUT/." "$WORK/rootfs/opt/check/"
    cp -r "$ROOT/firmware_config" "$ROOT/README.md" "$WORK/rootfs/opt/check/src/"
    chmod -R a+rX "$WORK/rootfs/opt/check"   # the service user reads the pack and the photo
    echo "== $suite: installing and running the device under emulation"
    if ! chroot "$WORK/rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheelhouse \
            python3 /opt/check/src/firmware_config/arm64_check.py inside "$suite" /opt/check; then
        STATUS=1
    fi
    cp "$WORK/rootfs/opt/check/result-$suite.json" "$HOST_OUT/" 2>/dev/null || STATUS=1
    RESULTS+=("$HOST_OUT/result-$suite.json")
    cleanup_work
done
"$PYTHON" "$HERE/arm64_check.py" table "$HOST_OUT/x86-scan.json" "${RESULTS[@]}" || STATUS=1
exit "$STATUS"
