"""The EASI trend chart as inline SVG: no JavaScript, no chart library, no network.

Visits are spaced evenly left to right (oldest first); the y axis runs from 0
to the smallest EASI band edge (7, 21, 50, 72) above the highest value, with
dashed lines at the band edges so staff see the severity band at a glance.
Incomplete visits have no total and are drawn as a hollow mark on the axis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

log = logging.getLogger(__name__)

#: Upper edges of the EASI bands (clear 0, almost clear <=1, mild <=7, moderate <=21,
#: severe <=50, very severe <=72).
BAND_EDGES: tuple[float, ...] = (1, 7, 21, 50, 72)


@dataclass(frozen=True)
class Point:
    label: str  # e.g. the visit date
    value: float | None  # EASI total; None while the visit is incomplete


def axis_max(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    for edge in BAND_EDGES[1:]:
        if top <= edge:
            return edge
    return BAND_EDGES[-1]


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def trend_chart(points: Sequence[Point], *, width: int = 640, height: int = 220,
                title: str = "EASI over visits") -> Markup:
    """An ``<svg>`` element (safe to insert into a page) charting ``points``."""
    left, right, top, bottom = 44, 40, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p.value for p in points if p.value is not None]
    ymax = axis_max(values)

    def x_at(i: int) -> float:
        if len(points) <= 1:
            return left + plot_w / 2
        return left + plot_w * i / (len(points) - 1)

    def y_at(v: float) -> float:
        return top + plot_h * (1 - v / ymax)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>',
        f'<text x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end">0</text>',
    ]
    for edge in BAND_EDGES:
        if edge > ymax:
            break
        y = y_at(edge)
        parts.append(f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                     f'y2="{y:.1f}" stroke-dasharray="4 4"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(edge)}</text>')
    if not points:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
                     'text-anchor="middle">no visits yet</text>')
    # Label at most ~8 visits on the x axis so dates do not overlap on a 7-inch screen.
    step = max(1, -(-len(points) // 8))
    coords = [(x_at(i), y_at(p.value)) for i, p in enumerate(points) if p.value is not None]
    if len(coords) > 1:  # the line goes under the dots
        d = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in enumerate(coords))
        parts.append(f'<path class="line" d="{d}"/>')
    for i, point in enumerate(points):
        x = x_at(i)
        if i % step == 0 or i == len(points) - 1:
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" '
                         f'text-anchor="middle">{escape(point.label)}</text>')
        if point.value is None:
            parts.append(f'<circle cx="{x:.1f}" cy="{top + plot_h}" r="4" fill="#fff" '
                         'stroke="#999" stroke-width="1.5"><title>incomplete visit</title></circle>')
            continue
        y = y_at(point.value)
        parts.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4.5">'
                     f"<title>{escape(point.label)}: EASI {_fmt(point.value)}</title></circle>")
        parts.append(f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">'
                     f"{_fmt(point.value)}</text>")
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
                 f"visit date</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


#: One style per sign: colour and dash, so the lines differ without colour too.
GRADE_STYLES: tuple[tuple[str, str], ...] = (("#c62828", ""), ("#1565c0", "6 4"),
                                             ("#2e7d32", "2 3"))
GRADE_NAMES = ("none", "mild", "moderate", "severe")


def _dash(pattern: str) -> str:
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def grades_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *,
                 width: int = 640, height: int = 200,
                 title: str = "Grades over visits") -> Markup:
    """An ``<svg>`` of several 0-3 grade series over the same visits (oldest first); a
    missing grade breaks its line. Each series has its own colour and dash, and a legend."""
    left, right, top, bottom = 78, 36, 14, 46
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if len(labels) <= 1 else plot_w * i / (len(labels) - 1))

    def y_at(v: float) -> float:
        return top + plot_h * (1 - v / 3)

    parts = [f'<svg class="chart grades" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for g, name in enumerate(GRADE_NAMES):
        y = y_at(g)
        parts.append(f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                     f'y2="{y:.1f}"{_dash("" if g == 0 else "4 4")}/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{g} {name}</text>')
    step = max(1, -(-len(labels) // 8))
    for i, label in enumerate(labels):
        if i % step == 0 or i == len(labels) - 1:
            parts.append(f'<text x="{x_at(i):.1f}" y="{top + plot_h + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    for k, (name, values) in enumerate(series):
        colour, dash = GRADE_STYLES[k % len(GRADE_STYLES)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append((x_at(i), y_at(float(v))))
        for run in runs:
            if len(run) > 1:
                d = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(run))
                parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2.5"'
                             f"{_dash(dash)}/>")
        for i, v in enumerate(values):
            if v is not None:
                parts.append(f'<circle cx="{x_at(i):.1f}" cy="{y_at(float(v)):.1f}" r="4" '
                             f'fill="{colour}"><title>{escape(name)} {escape(labels[i])}: '
                             f"{_fmt(float(v))}</title></circle>")
        lx = left + k * (plot_w / max(1, len(series)))
        parts.append(f'<line x1="{lx:.1f}" y1="{height - 8}" x2="{lx + 22:.1f}" y2="{height - 8}" '
                     f'stroke="{colour}" stroke-width="2.5"{_dash(dash)}/>')
        parts.append(f'<text x="{lx + 26:.1f}" y="{height - 4}">{escape(name)}</text>')
    if not labels:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
                     'text-anchor="middle">no visits yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
