#!/usr/bin/env bash
# Install (or remove) atopiscan on a device: Raspberry Pi 4 or 5, or a Jetson Orin.
#
#   sudo firmware_config/install.sh [--profile pi5|pi4|jetson-orin] [--wheel FILE]
#        [--public-key FILE] [--pack FILE] [--dry-run]
#   sudo firmware_config/install.sh --uninstall [--purge-data] [--dry-run]
#
# The program is a wheel (--wheel, or one built from this checkout) installed
# with its device dependencies into /opt/atopiscan/venv; NumPy, OpenCV, Pillow
# and LiteRT come from PyPI. Where Raspberry Pi's apt repository offers
# python3-picamera2, it is installed and the venv sees the system packages,
# with NumPy held to the major version picamera2 was built for; elsewhere the
# camera is OpenCV's (a Pi profile's picamera2 camera becomes camera index 0).
# A Jetson's GStreamer camera needs JetPack's OpenCV: the venv uses it when it
# is there. Running it again changes nothing that is already as asked, and
# says so. --uninstall removes the program, unit and config but keeps patient
# data (/var/lib/atopiscan) unless --purge-data is given. Without a running
# systemd (a chroot, an image build) the unit is installed and enabled, not
# started. --dry-run prints every command and changes nothing.
set -euo pipefail

PREFIX=/opt/atopiscan
CONF_DIR=/etc/atopiscan
DATA_DIR=/var/lib/atopiscan
LOG_DIR=/var/log/atopiscan
SERVICE_USER=atopiscan
UNIT_NAME=atopiscan.service
UNIT=/etc/systemd/system/$UNIT_NAME
STATE="$PREFIX/installed"   # what the last run installed: wheel and pack digests
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
UNINSTALL=0
PURGE_DATA=0
PROFILE=""
PACK=""
PUBLIC_KEY=""
WHEEL=""
CHANGES=0

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install.sh: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge-data) PURGE_DATA=1 ;;
        --profile) PROFILE="${2:?--profile needs pi5, pi4 or jetson-orin}"; shift ;;
        --public-key) PUBLIC_KEY="${2:?--public-key needs a file}"; shift ;;
        --pack) PACK="${2:?--pack needs a file}"; shift ;;
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

# A change: print it, and run it unless this is a dry run.
change() {
    printf '+ %s\n' "$*"
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" -eq 0 ]; then
        "$@"
    fi
}

digest() {
    sha256sum "$1" | cut -d' ' -f1
}

# A wheel's content digest: its RECORD (every file's sha256), not the zip's
# bytes, which hold build times: the same sources give the same digest.
wheel_digest() {
    python3 -c 'import sys, zipfile, hashlib
with zipfile.ZipFile(sys.argv[1]) as whl:
    record = [n for n in whl.namelist() if n.endswith(".dist-info/RECORD")]
    print(hashlib.sha256(whl.read(record[0])).hexdigest())' "$1"
}

systemd_running() {
    [ -d /run/systemd/system ]
}

uninstall() {
    if systemd_running && systemctl is-active --quiet "$UNIT_NAME"; then
        change systemctl stop "$UNIT_NAME"
    fi
    if [ -e "$UNIT" ] || [ -L "/etc/systemd/system/multi-user.target.wants/$UNIT_NAME" ]; then
        change systemctl disable "$UNIT_NAME"
        change rm -f "$UNIT"
        if systemd_running; then
            change systemctl daemon-reload
        fi
    fi
    for path in "$PREFIX" "$CONF_DIR"; do
        if [ -e "$path" ]; then
            change rm -rf "$path"
        fi
    done
    if [ "$PURGE_DATA" -eq 1 ]; then
        for path in "$DATA_DIR" "$LOG_DIR"; do
            if [ -e "$path" ]; then
                change rm -rf "$path"
            fi
        done
        if id "$SERVICE_USER" >/dev/null 2>&1; then
            change userdel "$SERVICE_USER"
        fi
    elif [ -e "$DATA_DIR" ]; then
        echo "kept the patient data in $DATA_DIR and the $SERVICE_USER user (--purge-data removes them)"
    fi
    if [ "$CHANGES" -eq 0 ]; then
        echo "Nothing to remove: atopiscan is not installed."
    else
        echo "Removed atopiscan ($CHANGES change(s))."
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
        *"Jetson"*) echo jetson-orin ;;
        *) echo "" ;;
    esac
}

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo), or with --dry-run to see what it would do"
fi
if [ "$UNINSTALL" -eq 1 ]; then
    uninstall
    exit 0
fi

if [ -z "$PROFILE" ]; then
    PROFILE="$(detect_profile)"
    if [ -z "$PROFILE" ]; then
        if [ "$DRY_RUN" -eq 1 ]; then
            PROFILE=pi5
        else
            die "this is not a Raspberry Pi 4 or 5 or a Jetson; pass --profile pi5|pi4|jetson-orin"
        fi
    fi
fi
case "$PROFILE" in
    pi5|pi4|jetson-orin) ;;
    *) die "unknown profile '$PROFILE': expected pi5, pi4 or jetson-orin" ;;
esac
PROFILE_YAML="$SRC_DIR/firmware_config/$PROFILE.yaml"
[ -f "$PROFILE_YAML" ] || die "$PROFILE_YAML is missing"
if [ -n "$PUBLIC_KEY" ] && [ ! -f "$PUBLIC_KEY" ]; then
    die "public key '$PUBLIC_KEY' not found"
fi
if [ -n "$PACK" ] && [ ! -f "$PACK" ]; then
    die "model pack '$PACK' not found"
fi
if [ -n "$WHEEL" ]; then
    [ -f "$WHEEL" ] || die "wheel '$WHEEL' not found"
    case "$(basename "$WHEEL")" in
        atopiscan-*.whl) ;;
        *) die "'$WHEEL' is not an atopiscan wheel (atopiscan-VERSION-py3-none-any.whl)" ;;
    esac
fi

echo "Installing atopiscan with profile $PROFILE$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run)')"

# --- system packages -------------------------------------------------------
PACKAGES=(python3-venv python3-pip ca-certificates)
# A device image always has these; a bare root file system (Trixie's) may not.
if ! command -v systemctl >/dev/null; then
    PACKAGES+=(systemd)
fi
if ! command -v useradd >/dev/null; then
    PACKAGES+=(passwd)
fi
PICAMERA=0
case "$PROFILE" in
    pi4|pi5)
        if apt-cache show python3-picamera2 >/dev/null 2>&1; then
            PACKAGES+=(python3-picamera2)
            PICAMERA=1
        else
            echo "note: no python3-picamera2 in this system's apt sources (Raspberry Pi's repository"
            echo "      is absent): the camera will be OpenCV's, camera index 0"
        fi ;;
esac
MISSING=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        MISSING+=("$package")
    fi
done
if [ "${#MISSING[@]}" -gt 0 ]; then
    change apt-get update
    change env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${MISSING[@]}"
fi

# --- which NumPy and OpenCV ------------------------------------------------
# With picamera2 from apt, or a Jetson's GStreamer OpenCV, the venv sees the
# system packages; NumPy from PyPI is then held to the major version those C
# extensions were built against (1.x on Bookworm and JetPack 6, 2.x on Trixie).
SYSTEM_SITE=0
SYSTEM_CV2=0
if [ "$PICAMERA" -eq 1 ]; then
    SYSTEM_SITE=1
fi
if [ "$PROFILE" = jetson-orin ] && python3 -c \
        "import cv2, re, sys; sys.exit(not re.search(r'GStreamer:\s+YES', cv2.getBuildInformation()))" \
        >/dev/null 2>&1; then
    SYSTEM_SITE=1
    SYSTEM_CV2=1
fi
CONSTRAINTS=()
if [ "$SYSTEM_SITE" -eq 1 ]; then
    NUMPY_MAJOR="$(python3 -c 'import numpy; print(numpy.__version__.split(".")[0])' 2>/dev/null || true)"
    if [ -n "$NUMPY_MAJOR" ]; then
        CONSTRAINTS=("numpy<$((NUMPY_MAJOR + 1))")
        echo "NumPy from PyPI is held below $((NUMPY_MAJOR + 1)) (the system's C extensions use NumPy $NUMPY_MAJOR)"
    fi
fi

# --- service user ----------------------------------------------------------
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    change useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin \
        --groups video "$SERVICE_USER"
elif ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx video; then
    change usermod -a -G video "$SERVICE_USER"
fi

# --- the program -----------------------------------------------------------
VENV_FLAGS=()
if [ "$SYSTEM_SITE" -eq 1 ]; then
    VENV_FLAGS=(--system-site-packages)
fi
WANT_SITE="include-system-site-packages = $([ "$SYSTEM_SITE" -eq 1 ] && echo true || echo false)"
if [ ! -x "$PREFIX/venv/bin/python" ] || ! grep -qx "$WANT_SITE" "$PREFIX/venv/pyvenv.cfg"; then
    change rm -rf "$PREFIX/venv"
    change install -d -m 0755 "$PREFIX"
    change python3 -m venv "${VENV_FLAGS[@]}" "$PREFIX/venv"
    change rm -f "$STATE/wheel.sha256"
fi
BUILD_DIR=""
if [ -z "$WHEEL" ]; then
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    if [ "$DRY_RUN" -eq 1 ]; then
        WHEEL="$BUILD_DIR/atopiscan.whl"
        printf '+ %s\n' "python3 -m pip wheel --no-deps -w $BUILD_DIR $SRC_DIR"
    else
        echo "building the wheel from $SRC_DIR"
        "$PREFIX/venv/bin/python" -m pip wheel --quiet --no-deps -w "$BUILD_DIR" "$SRC_DIR"
        WHEEL="$(ls "$BUILD_DIR"/atopiscan-*.whl)"
    fi
fi
WHEEL_SHA="$( [ -f "$WHEEL" ] && wheel_digest "$WHEEL" || echo none)"
if [ "$WHEEL_SHA" != "$(cat "$STATE/wheel.sha256" 2>/dev/null || true)" ]; then
    PIP_ARGS=(install --quiet --disable-pip-version-check)
    if [ "${#CONSTRAINTS[@]}" -gt 0 ]; then
        change install -d -m 0755 "$STATE"
        if [ "$DRY_RUN" -eq 0 ]; then
            printf '%s\n' "${CONSTRAINTS[@]}" > "$STATE/constraints.txt"
        fi
        PIP_ARGS+=(--constraint "$STATE/constraints.txt")
    fi
    change "$PREFIX/venv/bin/pip" "${PIP_ARGS[@]}" --force-reinstall --no-deps "$WHEEL"
    change "$PREFIX/venv/bin/pip" "${PIP_ARGS[@]}" "${WHEEL}[device]"
    if [ "$SYSTEM_CV2" -eq 1 ]; then
        echo "using JetPack's OpenCV (GStreamer) instead of PyPI's opencv-python-headless"
        change "$PREFIX/venv/bin/pip" uninstall --quiet --yes opencv-python-headless
    fi
    change install -d -m 0755 "$STATE"
    if [ "$DRY_RUN" -eq 0 ]; then
        echo "$WHEEL_SHA" > "$STATE/wheel.sha256"
    fi
fi

if [ -f "$SRC_DIR/README.md" ] && ! cmp -s "$SRC_DIR/README.md" "$PREFIX/README.md"; then
    change install -D -m 0644 "$SRC_DIR/README.md" "$PREFIX/README.md"   # the unit's Documentation=
fi

# --- configuration ---------------------------------------------------------
if [ ! -d "$DATA_DIR" ]; then
    change install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
fi
if [ ! -d "$CONF_DIR" ]; then
    change install -d -m 0755 "$CONF_DIR"
fi
if [ -f "$CONF_DIR/config.yaml" ]; then
    echo "keeping the existing $CONF_DIR/config.yaml"
elif [ "$PICAMERA" -eq 0 ] && grep -q '^  source: picamera2' "$PROFILE_YAML"; then
    change install -m 0644 "$PROFILE_YAML" "$CONF_DIR/config.yaml"
    change sed -i 's/^  source: picamera2.*/  source: opencv          # python3-picamera2 was not available\n  device: "0"/' \
        "$CONF_DIR/config.yaml"
else
    change install -m 0644 "$PROFILE_YAML" "$CONF_DIR/config.yaml"
fi
if [ -n "$PUBLIC_KEY" ]; then
    if ! cmp -s "$PUBLIC_KEY" "$CONF_DIR/pack-signing.pub"; then
        change install -m 0644 "$PUBLIC_KEY" "$CONF_DIR/pack-signing.pub"
    fi
elif [ ! -f "$CONF_DIR/pack-signing.pub" ]; then
    echo "warning: no $CONF_DIR/pack-signing.pub: the device refuses every pack until it is installed (--public-key)" >&2
fi
if [ "$DRY_RUN" -eq 0 ]; then
    "$PREFIX/venv/bin/python" -m device check-config "$CONF_DIR/config.yaml" >/dev/null \
        || die "$CONF_DIR/config.yaml does not pass check-config (see above)"
fi

if [ -n "$PACK" ] && [ "$(digest "$PACK")" != "$(cat "$STATE/pack.sha256" 2>/dev/null || true)" ]; then
    change runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/python" -m device flash "$PACK" \
        --config "$CONF_DIR/config.yaml"
    if [ "$DRY_RUN" -eq 0 ]; then
        digest "$PACK" > "$STATE/pack.sha256"
    fi
fi

# --- the service -----------------------------------------------------------
UNIT_SRC="$SRC_DIR/firmware_config/systemd/$UNIT_NAME"
if ! cmp -s "$UNIT_SRC" "$UNIT"; then
    change install -m 0644 "$UNIT_SRC" "$UNIT"
    if systemd_running; then
        change systemctl daemon-reload
    fi
fi
if ! systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
    change systemctl enable "$UNIT_NAME"
fi
if ! systemd_running; then
    echo "no running systemd here (a chroot or an image build): the service is enabled, not started"
elif ! systemctl is-active --quiet "$UNIT_NAME"; then
    change systemctl start "$UNIT_NAME"
elif [ "$CHANGES" -gt 0 ]; then
    change systemctl restart "$UNIT_NAME"
fi

if [ "$CHANGES" -eq 0 ]; then
    echo "Nothing to change: atopiscan is already installed as asked (profile $PROFILE)."
else
    echo "Done ($CHANGES change(s)). The dashboard listens where $CONF_DIR/config.yaml says (web.host, web.port)."
    echo "The first start prints a one-time setup password: journalctl -u atopiscan -b | grep -i password"
fi
