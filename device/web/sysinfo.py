"""Host facts for the status page: CPU temperature and load, free disk, uptime.

Every reader returns None when the fact is not available on this machine (a
laptop has no /sys/class/thermal zone, a container may hide it); the page shows
"n/a" then, never a made-up number.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

THERMAL_ROOT = Path("/sys/class/thermal")
_PROCESS_START = time.time()


def cpu_temperature_c(root: Path = THERMAL_ROOT) -> float | None:
    """Highest temperature of the thermal zones (millidegrees in sysfs), or None."""
    temps = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            temps.append(int((zone / "temp").read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return round(max(temps), 1) if temps else None


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except (OSError, AttributeError):
        return None


def disk_free(path: Path) -> dict[str, float] | None:
    """Free and total space (GB) of the file system holding ``path``."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    gb = 1024 ** 3
    return {"free_gb": round(usage.free / gb, 2), "total_gb": round(usage.total / gb, 2),
            "free_percent": round(100 * usage.free / usage.total, 1) if usage.total else 0.0}


def system_uptime_s(path: Path = Path("/proc/uptime")) -> float | None:
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_uptime_s() -> float:
    return time.time() - _PROCESS_START


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"
