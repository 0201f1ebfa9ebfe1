"""Inline SVG charts rendered on the server: no script, no CDN, readable by screen readers (title, desc, table).

Rules:
- Every number and label is formatted here and escaped; the SVG is `Markup` built only from escaped pieces.
- Series differ by colour *and* dash pattern, so the chart reads without colour vision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from markupsafe import Markup, escape

from bastion.web.render import clock

WIDTH: Final = 720
HEIGHT: Final = 220
BARS_WIDTH: Final = 520
"""viewBox width of a bar chart (about its displayed width, so its text stays readable)."""
_PAD_LEFT: Final = 44
_PAD_RIGHT: Final = 12
_PAD_TOP: Final = 12
_PAD_BOTTOM: Final = 28
SERIES_STYLE: Final = {
    "calls": ("#1f5fa8", ""),
    "denials": ("#b3261e", "6 3"),
    "findings": ("#7a4a00", "2 3"),
}
"""Stroke colour and dash pattern per series (contrast >= 4.5:1 on white)."""


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (a round top for the y axis)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def time_series(points: Sequence[Mapping[str, Any]], *, chart_id: str, title: str) -> Markup:
    """A line chart of `calls`, `denials` and `findings` per point (oldest first)."""
    if not points:
        return Markup("")
    inner_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    inner_h = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    top = _nice_max(max(int(p.get(name, 0)) for p in points for name in SERIES_STYLE))
    step = inner_w / max(len(points) - 1, 1)

    def xy(i: int, value: int) -> str:
        return f"{_PAD_LEFT + i * step:.1f},{_PAD_TOP + inner_h - value / top * inner_h:.1f}"

    totals = {name: sum(int(p.get(name, 0)) for p in points) for name in SERIES_STYLE}
    desc = ", ".join(f"{totals[n]} {n}" for n in SERIES_STYLE) + f" over the last {len(points)} minutes"
    parts: list[Markup] = [
        Markup(
            '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-t {id}-d" '
            'preserveAspectRatio="xMidYMid meet"><title id="{id}-t">{title}</title><desc id="{id}-d">{desc}</desc>'
        ).format(w=WIDTH, h=HEIGHT, id=chart_id, title=title, desc=desc)
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _PAD_TOP + inner_h - fraction * inner_h
        parts.append(
            Markup(
                '<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c8c8c8" stroke-width="1"/>'
                '<text x="{tx}" y="{ty:.1f}" text-anchor="end" font-size="11" fill="#333">{label}</text>'
            ).format(
                x1=_PAD_LEFT,
                x2=WIDTH - _PAD_RIGHT,
                y=y,
                tx=_PAD_LEFT - 6,
                ty=y + 4,
                label=int(top * fraction),
            )
        )
    for index, anchor in ((0, "start"), (len(points) // 2, "middle"), (len(points) - 1, "end")):
        parts.append(
            Markup(
                '<text x="{x:.1f}" y="{y}" text-anchor="{a}" font-size="11" fill="#333">{t}</text>'
            ).format(x=_PAD_LEFT + index * step, y=HEIGHT - 8, a=anchor, t=clock(points[index].get("t"))[:5])
        )
    for name, (colour, dash) in SERIES_STYLE.items():
        coords = " ".join(xy(i, int(p.get(name, 0))) for i, p in enumerate(points))
        parts.append(
            Markup(
                '<polyline points="{c}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}">'
                "<title>{name}</title></polyline>"
            ).format(c=coords, colour=colour, dash=dash or "none", name=name)
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def bars(rows: Sequence[Mapping[str, Any]], *, chart_id: str, title: str) -> Markup:
    """Horizontal bars for `{"name", "calls"}` rows, largest first, with the values written out."""
    if not rows:
        return Markup("")
    row_h = 24
    height = row_h * len(rows) + 8
    top = max(int(r.get("calls", 0)) for r in rows) or 1
    width = BARS_WIDTH
    label_w = 220
    bar_w = width - label_w - 50
    parts: list[Markup] = [
        Markup(
            '<svg class="chart bars" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-t">'
            '<title id="{id}-t">{title}</title>'
        ).format(w=width, h=height, id=chart_id, title=title)
    ]
    for i, row in enumerate(rows):
        y = 4 + i * row_h
        count = int(row.get("calls", 0))
        name = str(row.get("name", ""))
        shown = name if len(name) <= 30 else name[:29] + "…"
        parts.append(
            Markup(
                '<text x="{lx}" y="{ty}" text-anchor="end" font-size="12" fill="#222">{name}</text>'
                '<rect x="{bx}" y="{y}" width="{bw:.1f}" height="{bh}" fill="#1f5fa8"/>'
                '<text x="{vx:.1f}" y="{ty}" font-size="12" fill="#222">{count}</text>'
            ).format(
                lx=label_w - 8, ty=y + 15, name=shown, bx=label_w, y=y + 2, bw=max(count / top * bar_w, 1.0),
                bh=row_h - 8, vx=label_w + count / top * bar_w + 6, count=count,
            )
        )  # fmt: skip
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def legend() -> Markup:
    """The series legend as HTML (colour swatch plus dash pattern plus name)."""
    items = [
        Markup(
            '<li><svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" stroke="{c}" '
            'stroke-width="3" stroke-dasharray="{d}"/></svg> {n}</li>'
        ).format(c=colour, d=dash or "none", n=escape(name))
        for name, (colour, dash) in SERIES_STYLE.items()
    ]
    return Markup('<ul class="legend">{}</ul>').format(Markup("").join(items))
