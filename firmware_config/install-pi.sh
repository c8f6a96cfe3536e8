#!/usr/bin/env bash
# Install atopiscan on Raspberry Pi OS Bookworm (Pi 4 or Pi 5).
#
#   sudo firmware_config/install-pi.sh [--profile pi5|pi4] [--public-key FILE] [--pack FILE] [--dry-run]
#
# picamera2, OpenCV and NumPy come from apt: picamera2 is built against
# Debian's NumPy 1.x, so the venv sees the system packages
# (--system-site-packages) and must never pull NumPy 2 from PyPI. The LiteRT
# interpreter (ai-edge-litert) comes from PyPI. The service runs as a dedicated
# user in the video group. The profiles require signed packs: --public-key
# installs the key that `python -m convert keygen` made. --dry-run prints every
# command and changes nothing.
set -euo pipefail

PREFIX=/opt/atopiscan
CONF_DIR=/etc/atopiscan
DATA_DIR=/var/lib/atopiscan
SERVICE_USER=atopiscan
UNIT=/etc/systemd/system/atopiscan.service
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
PROFILE=""
PACK=""
PUBLIC_KEY=""

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --profile) PROFILE="${2:?--profile needs pi5 or pi4}"; shift ;;
        --public-key) PUBLIC_KEY="${2:?--public-key needs a file}"; shift ;;
        --pack) PACK="${2:?--pack needs a file}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-pi.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# Print a command; run it unless this is a dry run.
run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" -eq 0 ]; then
        "$@"
    fi
}

detect_profile() {
    local model=""
    if [ -r /proc/device-tree/model ]; then
        model="$(tr -d '\0' < /proc/device-tree/model)"
    fi
    case "$model" in
        *"Raspberry Pi 5"*) echo pi5 ;;
        *"Raspberry Pi 4"*) echo pi4 ;;
        *) echo "" ;;
    esac
}

if [ -z "$PROFILE" ]; then
    PROFILE="$(detect_profile)"
    if [ -z "$PROFILE" ]; then
        if [ "$DRY_RUN" -eq 1 ]; then
            PROFILE=pi5
        else
            echo "install-pi.sh: this is not a Raspberry Pi 4 or 5; pass --profile pi5|pi4" >&2
            exit 2
        fi
    fi
fi
case "$PROFILE" in
    pi5|pi4) ;;
    *) echo "install-pi.sh: unknown profile '$PROFILE': expected pi5 or pi4" >&2; exit 2 ;;
esac
if [ ! -f "$SRC_DIR/firmware_config/$PROFILE.yaml" ]; then
    echo "install-pi.sh: $SRC_DIR/firmware_config/$PROFILE.yaml is missing" >&2
    exit 2
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install-pi.sh: run as root (sudo), or with --dry-run to see what it would do" >&2
    exit 2
fi
if [ -n "$PUBLIC_KEY" ] && [ ! -f "$PUBLIC_KEY" ]; then
    echo "install-pi.sh: public key '$PUBLIC_KEY' not found" >&2
    exit 2
fi
if [ -n "$PACK" ] && [ ! -f "$PACK" ]; then
    echo "install-pi.sh: model pack '$PACK' not found" >&2
    exit 2
fi

echo "Installing atopiscan from $SRC_DIR with profile $PROFILE$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run)')"

run apt-get update
run apt-get install -y --no-install-recommends \
    python3-venv python3-pip python3-picamera2 python3-opencv "python3-numpy"

if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin \
        --groups video "$SERVICE_USER"
else
    run usermod -a -G video "$SERVICE_USER"
fi

run install -d -m 0755 "$PREFIX"
run rm -rf "$PREFIX/src"
run cp -a "$SRC_DIR" "$PREFIX/src"
run python3 -m venv --system-site-packages "$PREFIX/venv"
# "numpy<2" is already met by Debian's python3-numpy; saying it stops pip from
# upgrading it underneath picamera2.
run "$PREFIX/venv/bin/pip" install "numpy<2" ai-edge-litert flask flask-wtf \
    waitress "pydantic>=2" pyyaml cryptography
# --no-deps: OpenCV and NumPy are Debian's; the wheel of opencv-python-headless
# would shadow the apt build that knows the Pi's camera stack.
run "$PREFIX/venv/bin/pip" install --no-deps "$PREFIX/src"

run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
run install -d -m 0755 "$CONF_DIR"
if [ -f "$CONF_DIR/config.yaml" ]; then
    echo "keeping the existing $CONF_DIR/config.yaml"
else
    run install -m 0644 "$SRC_DIR/firmware_config/$PROFILE.yaml" "$CONF_DIR/config.yaml"
fi
if [ -n "$PUBLIC_KEY" ]; then
    run install -m 0644 "$PUBLIC_KEY" "$CONF_DIR/pack-signing.pub"
elif [ ! -f "$CONF_DIR/pack-signing.pub" ]; then
    echo "warning: no $CONF_DIR/pack-signing.pub: the device refuses every pack until it is installed (--public-key)" >&2
fi
run "$PREFIX/venv/bin/python" -m device check-config "$CONF_DIR/config.yaml"

if [ -n "$PACK" ]; then
    run runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/python" -m device flash "$PACK" \
        --config "$CONF_DIR/config.yaml"
fi

run install -m 0644 "$SRC_DIR/firmware_config/systemd/atopiscan.service" "$UNIT"
run systemctl daemon-reload
run systemctl enable --now atopiscan.service

echo "Done. The dashboard listens where $CONF_DIR/config.yaml says (web.host, web.port)."
echo "The first start prints a one-time setup password: journalctl -u atopiscan -b | grep -i password"
