"""Inline SVG charts for report.html: bar profiles, a steering heatmap, model-vs-human deltas.

Plain strings, no scripts, no external references (not even an xmlns URL: inline SVG in
HTML5 needs none), so the report renders offline and identically everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np
import numpy.typing as npt

from vpbatch.report.common import fmt

__all__ = [
    "VALUE_COLOURS",
    "colour",
    "bar_chart",
    "heatmap",
    "paired_bars",
    "diverging",
    "nice_limit",
    "percentile_grid",
    "PERCENTILE_BELOW",
    "PERCENTILE_ABOVE",
]

F64 = npt.NDArray[np.float64]

# One colour per dimension, everywhere in the report. Neighbours on Schwartz's circle share a
# hue family (conservation blues, self-transcendence greens, self-enhancement reds, openness
# golds) so the charts read like the circle.
VALUE_COLOURS: dict[str, str] = {
    "Universalism": "#1b9e77",
    "Benevolence": "#66a61e",
    "Conformity": "#4575b4",
    "Tradition": "#313695",
    "Security": "#74add1",
    "Power": "#d73027",
    "Achievement": "#f46d43",
    "Hedonism": "#c51b7d",
    "Stimulation": "#e6ab02",
    "Self_Direction": "#a6761d",
    "Self_Enhancement": "#d73027",
    "Self_Transcendence": "#1b9e77",
    "Conservation": "#4575b4",
    "Openness_to_Change": "#e6ab02",
    "Openness": "#7570b3",
    "Conscientiousness": "#1f78b4",
    "Extraversion": "#ff7f00",
    "Agreeableness": "#33a02c",
    "Neuroticism": "#6a3d9a",
}
HUMAN_COLOUR = "#9e9e9e"
_FONT = 'font-family="Helvetica,Arial,sans-serif"'


def colour(dim: str) -> str:
    return VALUE_COLOURS.get(dim, "#555555")


def label(dim: str) -> str:
    """Display name of a dimension (the dataset's underscore becomes a hyphen or space)."""
    return dim.replace("Self_", "Self-").replace("_", " ")


# Axis limits whose halves are round too, so the five tick labels read cleanly.
_LIMITS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0)


def nice_limit(values: npt.ArrayLike, floor: float = 0.2) -> float:
    """A symmetric axis limit: the first round step at or above max |value| (and `floor`)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    top = float(np.nanmax(a)) if a.size and not np.isnan(a).all() else 0.0
    top = max(top, floor)
    return next((lim for lim in _LIMITS if lim >= top - 1e-9), math.ceil(top))


def _f(x: float) -> str:
    return f"{x:.1f}"


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = 12,
          weight: str = "normal", fill: str = "#222", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}" fill="{fill}" {_FONT} {extra}>{escape(s)}</text>')


def _open(width: float, height: float, title: str) -> str:
    # role/aria-label make each chart announce its title to screen readers.
    return (f'<svg class="chart" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<rect width="100%" height="100%" fill="#ffffff"/>')


def _x_axis(x0: float, x1: float, y_top: float, y_bot: float, lim: float, caption: str) -> str:
    """Grid lines and tick labels of a symmetric axis [-lim, lim], with its caption."""
    out = []
    # Five ticks (-lim, -lim/2, 0, lim/2, lim) stay legible at any chart width.
    for k in range(-2, 3):
        v = k * lim / 2
        x = x0 + (v + lim) / (2 * lim) * (x1 - x0)
        stroke = "#444" if k == 0 else "#e3e3e3"
        out.append(f'<line x1="{_f(x)}" y1="{_f(y_top)}" x2="{_f(x)}" y2="{_f(y_bot)}" '
                   f'stroke="{stroke}" stroke-width="1"/>')
        out.append(_text(x, y_bot + 14, f"{v:+.2f}" if k else "0.00", anchor="middle", size=10,
                         fill="#555"))
    out.append(_text((x0 + x1) / 2, y_bot + 30, caption, anchor="middle", size=11, fill="#333"))
    return "".join(out)


def bar_chart(
    title: str,
    dims: Sequence[str],
    values: F64,
    low: F64 | None = None,
    high: F64 | None = None,
    *,
    lim: float | None = None,
    caption: str = "centred score (value mean − mean of all value items)",
    width: int = 380,
) -> str:
    """Horizontal bars of one profile, zero in the middle, 95% interval whiskers if given."""
    row_h, top, left, right = 22, 30, 120, 52
    height = top + row_h * len(dims) + 44
    lim = lim or nice_limit(np.concatenate([values, *(a for a in (low, high) if a is not None)]))
    x0, x1 = left, width - right

    def sx(v: float) -> float:
        return x0 + (min(max(v, -lim), lim) + lim) / (2 * lim) * (x1 - x0)

    out = [_open(width, height, title), _text(8, 18, title, size=13, weight="bold")]
    out.append(_x_axis(x0, x1, top - 4, top + row_h * len(dims), lim, caption))
    for i, dim in enumerate(dims):
        y = top + i * row_h
        out.append(_text(left - 6, y + 15, label(dim), anchor="end", size=11))
        v = float(values[i])
        if math.isnan(v):
            out.append(_text(sx(0) + 4, y + 15, "n/a", size=10, fill="#888"))
            continue
        a, b = sorted((sx(0), sx(v)))
        out.append(f'<rect class="bar" x="{_f(a)}" y="{_f(y + 4)}" width="{_f(max(b - a, 1))}" '
                   f'height="{row_h - 8}" fill="{colour(dim)}"><title>{escape(label(dim))}: '
                   f'{fmt(v)}</title></rect>')
        if low is not None and high is not None and not np.isnan([low[i], high[i]]).any():
            lo, hi = sx(float(low[i])), sx(float(high[i]))
            ym = y + row_h / 2
            out.append(f'<path d="M{_f(lo)},{_f(ym)}H{_f(hi)}M{_f(lo)},{_f(ym - 4)}V{_f(ym + 4)}'
                       f'M{_f(hi)},{_f(ym - 4)}V{_f(ym + 4)}" stroke="#111" stroke-width="1.2" '
                       'fill="none"/>')
        # Numbers in their own column at the right, so no bar or whisker ever covers one.
        out.append(_text(width - 6, y + 15, fmt(v), anchor="end", size=10))
    out.append("</svg>")
    return "".join(out)


def diverging(v: float, lim: float) -> str:
    """Blue (negative) - white - red (positive) colour for a heatmap cell."""
    if math.isnan(v):
        return "#f0f0f0"
    t = max(-1.0, min(1.0, v / lim))
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    rgb = tuple(round(255 + (c - 255) * abs(t)) for c in end)
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    matrix: F64,
    *,
    row_caption: str = "steered value",
    col_caption: str = "measured value",
    mark_diagonal: bool = True,
    left: float = 128,
    tip: str = "steered {row}, measured {col}",
) -> str:
    """A diverging heatmap with the numbers in the cells and the diagonal outlined in black.

    `left` is the room for the row labels (long model names need more); `tip` each cell's
    tooltip, with {row} and {col}."""
    cell, top = 42, 118  # two heatmaps side by side in a 1400 px window
    n_r, n_c = len(rows), len(cols)
    lim = nice_limit(matrix)
    width = left + cell * n_c + 90
    height = top + cell * n_r + 20
    out = [_open(width, height, title), _text(8, 18, title, size=13, weight="bold")]
    out.append(_text(left + cell * n_c / 2, 38, col_caption + " →", anchor="middle", size=11))
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        out.append(_text(x, top - 8, label(c), size=11, extra=f'transform="rotate(-50 {_f(x)} '
                         f'{_f(top - 8)})"'))
    ry = top + cell * n_r / 2
    out.append(_text(14, ry, row_caption + " →", anchor="middle", size=11,
                     extra=f'transform="rotate(90 14 {_f(ry)})"'))
    for i, r in enumerate(rows):
        y = top + i * cell
        out.append(_text(left - 6, y + cell / 2 + 4, label(r), anchor="end", size=11))
        for j, c in enumerate(cols):
            v = float(matrix[i, j])
            x = left + j * cell
            fill = diverging(v, lim)
            where = tip.format(row=label(r), col=label(c))
            text = f"{where}: " + ("n/a" if math.isnan(v) else fmt(v))
            out.append(f'<rect class="cell" x="{_f(x)}" y="{_f(y)}" width="{cell}" '
                       f'height="{cell}" fill="{fill}" stroke="#ffffff" stroke-width="1">'
                       f'<title>{escape(text)}</title></rect>')
            ink = "#ffffff" if not math.isnan(v) and abs(v) > 0.55 * lim else "#222"
            out.append(_text(x + cell / 2, y + cell / 2 + 4, "" if math.isnan(v) else fmt(v),
                             anchor="middle", size=11, fill=ink))
    if mark_diagonal:
        for i in range(min(n_r, n_c)):
            x, y = left + i * cell, top + i * cell
            out.append(f'<rect class="diag" x="{_f(x + 1.5)}" y="{_f(y + 1.5)}" '
                       f'width="{cell - 3}" height="{cell - 3}" fill="none" stroke="#000" '
                       'stroke-width="3"/>')
    out.append(_legend(left + cell * n_c + 24, top, cell * n_r, lim))
    out.append("</svg>")
    return "".join(out)


def _legend(x: float, y: float, h: float, lim: float) -> str:
    """A vertical colour bar in 21 steps with its scale, top = +lim."""
    steps = 21
    out = []
    for k in range(steps):
        v = lim - 2 * lim * k / (steps - 1)
        out.append(f'<rect x="{_f(x)}" y="{_f(y + k * h / steps)}" width="14" '
                   f'height="{_f(h / steps + 0.5)}" fill="{diverging(v, lim)}"/>')
    for v, yy in ((lim, y + 8), (0.0, y + h / 2 + 4), (-lim, y + h)):
        out.append(_text(x + 18, yy, f"{v:+.2f}" if v else "0.00", size=10))
    out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="14" height="{_f(h)}" fill="none" '
               'stroke="#999"/>')
    return "".join(out)


def paired_bars(
    title: str,
    dims: Sequence[str],
    model: F64,
    human: F64,
    *,
    lim: float | None = None,
    model_name: str = "model",
    width: int = 360,
) -> str:
    """Per value: the model's delta (value colour) above the humans' delta (grey)."""
    row_h, top, left, right = 26, 44, 120, 44
    height = top + row_h * len(dims) + 44
    lim = lim or nice_limit(np.concatenate([model, human]))
    x0, x1 = left, width - right

    def sx(v: float) -> float:
        return x0 + (min(max(v, -lim), lim) + lim) / (2 * lim) * (x1 - x0)

    out = [_open(width, height, title), _text(8, 18, title, size=13, weight="bold")]
    # The model's bars wear their value's colour, so its swatch shows a few of them.
    out.append("".join(f'<rect x="{8 + 4 * k}" y="26" width="4" height="10" fill="{colour(d)}"/>'
                       for k, d in enumerate(("Universalism", "Power", "Stimulation")))
               + _text(24, 35, model_name, size=10)
               + f'<rect x="150" y="26" width="10" height="10" fill="{HUMAN_COLOUR}"/>'
               + _text(164, 35, "ESS humans", size=10))
    out.append(_x_axis(x0, x1, top - 4, top + row_h * len(dims), lim, "delta vs baseline"))
    for i, dim in enumerate(dims):
        y = top + i * row_h
        out.append(_text(left - 6, y + 16, label(dim), anchor="end", size=11))
        for k, (v, fill) in enumerate(((model[i], colour(dim)), (human[i], HUMAN_COLOUR))):
            if np.isnan(v):
                continue
            a, b = sorted((sx(0), sx(float(v))))
            who = model_name if k == 0 else "ESS humans"
            out.append(f'<rect class="bar" x="{_f(a)}" y="{_f(y + 3 + k * 10)}" '
                       f'width="{_f(max(b - a, 1))}" height="9" fill="{fill}"><title>'
                       f'{escape(who)}, {escape(label(dim))}: {fmt(float(v))}</title></rect>')
    out.append("</svg>")
    return "".join(out)


PERCENTILE_BELOW, PERCENTILE_ABOVE = "#4393c3", "#d6604d"  # bars under / over the median rater


def percentile_grid(title: str, rows: Sequence[str], dims: Sequence[str], pct: F64) -> str:
    """Models (rows) × dimensions: a bar from the 50% line to each human percentile (0-100).

    Each column is a strip chart on its own 0-100 scale with the median rater as a dashed
    line, and the number in a fixed slot at its right, so the grid reads as a chart and as a
    table: bars to the right of the line sit above most people.
    """
    cell_w, bar_w, row_h, top = 100.0, 68.0, 17.0, 104.0
    left = min(max((len(r) for r in rows), default=8) * 6.4 + 16, 280.0)
    width = left + cell_w * len(dims) + 70  # room for the last rotated heading
    height = top + row_h * len(rows) + 44
    out = [_open(width, height, title), _text(8, 18, title, size=13, weight="bold")]
    out.append(f'<rect x="8" y="28" width="12" height="10" fill="{PERCENTILE_BELOW}" '
               'opacity="0.8"/>' + _text(24, 37, "below the median rater", size=10)
               + f'<rect x="160" y="28" width="12" height="10" fill="{PERCENTILE_ABOVE}" '
               'opacity="0.8"/>' + _text(176, 37, "above it; dashed line = 50th percentile",
                                         size=10))
    y_end = top + row_h * len(rows)
    for k in range(1, len(rows), 2):  # zebra rows guide the eye across a wide grid
        out.append(f'<rect x="4" y="{_f(top + k * row_h)}" width="{_f(left + cell_w * len(dims))}'
                   f'" height="{row_h}" fill="#f4f4f4"/>')

    def sx(x0: float, v: float) -> float:
        return x0 + 4 + bar_w * min(max(v, 0.0), 100.0) / 100.0

    for j, d in enumerate(dims):
        x0 = left + j * cell_w
        mid = sx(x0, 50.0)
        out.append(_text(mid - 4, top - 8, label(d), size=11,
                         extra=f'transform="rotate(-35 {_f(mid - 4)} {_f(top - 8)})"'))
        out.append(f'<line x1="{_f(x0)}" y1="{_f(top - 2)}" x2="{_f(x0)}" y2="{_f(y_end)}" '
                   'stroke="#c8c8c8" stroke-width="1"/>')
        out.append(f'<line class="median" x1="{_f(mid)}" y1="{_f(top - 2)}" x2="{_f(mid)}" '
                   f'y2="{_f(y_end)}" stroke="#444" stroke-width="1" stroke-dasharray="3,2"/>')
        for tick, v in (("0", 0.0), ("50", 50.0), ("100", 100.0)):
            out.append(_text(sx(x0, v), y_end + 13, tick, anchor="middle", size=9, fill="#666"))
    out.append(_text(left + cell_w * len(dims) / 2, y_end + 30,
                     "percentile among the survey's raters (0-100)", anchor="middle", size=11))
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(_text(left - 6, y + 12.5, r, anchor="end", size=11))
        for j, d in enumerate(dims):
            x0 = left + j * cell_w
            num_x = x0 + cell_w - 5  # the number's own slot, right of the bar's scale
            v = float(pct[i, j])
            if math.isnan(v):
                out.append(_text(num_x, y + 12.5, "n/a", anchor="end", size=9, fill="#999"))
                continue
            a, b = sorted((sx(x0, 50.0), sx(x0, v)))
            fill = PERCENTILE_ABOVE if v > 50 else PERCENTILE_BELOW
            out.append(f'<rect class="pct" x="{_f(a)}" y="{_f(y + 3)}" width="{_f(max(b - a, 1))}"'
                       f' height="{row_h - 6}" fill="{fill}" opacity="0.8"><title>{escape(r)}, '
                       f'{escape(label(d))}: percentile {v:.0f}</title></rect>')
            out.append(_text(num_x, y + 12.5, f"{v:.0f}", anchor="end", size=10, fill="#222"))
    out.append("</svg>")
    return "".join(out)
