"""Charts as self-contained SVG, drawn here with no plotting library: the same input
gives the same bytes (fixed number formats, no ids, no timestamps), and every text a
repository brings is escaped.

Templates (DVC's names): `linear` (the default; `simple` and `smooth` are drawn the
same), `scatter`, `confusion` and `confusion_normalized`, `bar_horizontal` and
`bar_horizontal_sorted`."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

from mlv.plots.table import PlotError, Value

LINEAR = ("linear", "simple", "smooth")
TEMPLATES = (*LINEAR, "scatter", "confusion", "confusion_normalized", "bar_horizontal",
             "bar_horizontal_sorted")
# Tableau 10: distinct colours, readable on white
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
WIDTH, HEIGHT = 720, 360  # the plot area is HEIGHT tall
LEFT, RIGHT, TOP, BOTTOM = 80, 24, 44, 56
LEGEND_ROW = 18
MARKERS_UP_TO = 500  # points of a line drawn with a marker each
MAX_CLASSES = 60  # confusion matrix rows and columns
MAX_LABEL = 40  # characters of a tick label
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass
class Series:
    """One line (or one matrix): its legend text and (x, y) points in file order."""

    label: str
    points: list[tuple[Value, Value]] = field(default_factory=list)


@dataclass
class Chart:
    title: str
    template: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)


def esc(text: str) -> str:
    """Text safe in SVG or HTML, as element text or a quoted attribute: characters XML
    cannot hold become U+FFFD, markup characters entities."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def num(value: float) -> str:
    """A coordinate: two decimals, never `-0.00`."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def label(value: Value) -> str:
    """A value as a tick or cell label: numbers with six significant digits."""
    if isinstance(value, float):
        text = f"{value:.6g}"
        return "0" if text == "-0" else text
    return value if len(value) <= MAX_LABEL else value[: MAX_LABEL - 1] + "…"


def render(chart: Chart) -> bytes:
    """The chart as the bytes of an SVG file."""
    if chart.template not in TEMPLATES:
        raise PlotError(f"unknown plot template {chart.template!r}",
                        hint="use one of " + ", ".join(TEMPLATES))
    if not any(s.points for s in chart.series):
        raise PlotError("no data to draw")
    if chart.template.startswith("confusion"):
        body, width, height = _confusion(chart, chart.template == "confusion_normalized")
    elif chart.template.startswith("bar_horizontal"):
        body, width, height = _bars(chart, chart.template.endswith("_sorted"))
    else:
        body, width, height = _xy(chart, lines=chart.template in LINEAR)
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f"<title>{esc(chart.title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="{width // 2}" y="24" text-anchor="middle" font-size="15" '
            f'font-weight="bold">{esc(chart.title)}</text>']
    return ("\n".join(head + body + ["</svg>"]) + "\n").encode("utf-8")


# ---- axes -------------------------------------------------------------------------------

class Scale:
    """A numeric axis: data [lo, hi] onto pixels [a, b], with round tick values."""

    def __init__(self, values: list[float], a: float, b: float, zero: bool = False) -> None:
        lo, hi = min(values), max(values)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        if hi - lo < 1e-12 * max(abs(lo), abs(hi), 1.0):
            pad = abs(lo) * 0.1 if abs(lo) > 1e-200 else 1.0  # no step below a float's
            lo, hi = lo - pad, hi + pad
        if not math.isfinite(hi - lo):
            raise _too_far_apart()
        self.step = _nice_step((hi - lo) / 6)
        first, last = math.floor(lo / self.step), math.ceil(hi / self.step)
        # twelve significant digits: drops the noise of i * step, at any magnitude
        self.ticks = [float(f"{i * self.step:.12g}") for i in range(first, last + 1)]
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        if not math.isfinite(self.hi - self.lo):
            raise _too_far_apart()
        self.a, self.b = a, b

    def __call__(self, value: float) -> float:
        return self.a + (value - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _too_far_apart() -> PlotError:
    return PlotError("values too far apart to draw (beyond ±1.7e308)",
                     hint="check the plot's data for values out of range")


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))  # a float: ticks are floats
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def _categories(values: list[Value]) -> list[Value]:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def _every(n: int, most: int = 20) -> int:
    return max(1, math.ceil(n / most))


def _x_axis(out: list[str], ticks: list[tuple[float, str]], y0: float, x_label: str,
            width: int) -> None:
    out.append(f'<line x1="{LEFT}" y1="{num(y0)}" x2="{width - RIGHT}" y2="{num(y0)}" '
               'stroke="#333333"/>')
    for px, text in ticks:
        out.append(f'<line x1="{num(px)}" y1="{num(y0)}" x2="{num(px)}" y2="{num(y0 + 5)}" '
                   'stroke="#333333"/>')
        out.append(f'<text x="{num(px)}" y="{num(y0 + 18)}" text-anchor="middle">'
                   f"{esc(text)}</text>")
    out.append(f'<text x="{(LEFT + width - RIGHT) // 2}" y="{num(y0 + 40)}" '
               f'text-anchor="middle">{esc(x_label)}</text>')


def _y_axis(out: list[str], ticks: list[tuple[float, str]], y_label: str, width: int) -> None:
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + HEIGHT}" '
               'stroke="#333333"/>')
    for py, text in ticks:
        out.append(f'<line x1="{LEFT}" y1="{num(py)}" x2="{width - RIGHT}" y2="{num(py)}" '
                   'stroke="#e6e6e6"/>')
        out.append(f'<text x="{LEFT - 8}" y="{num(py + 4)}" text-anchor="end">'
                   f"{esc(text)}</text>")
    middle = TOP + HEIGHT // 2
    out.append(f'<text x="18" y="{middle}" text-anchor="middle" '
               f'transform="rotate(-90 18 {middle})">{esc(y_label)}</text>')


def _legend(out: list[str], labels: list[str], top: float) -> float:
    """Legend rows from `top`; returns the height used."""
    for i, text in enumerate(labels):
        y = top + i * LEGEND_ROW
        out.append(f'<rect x="{LEFT}" y="{num(y)}" width="12" height="12" '
                   f'fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text class="legend" x="{LEFT + 18}" y="{num(y + 10)}">{esc(text)}'
                   "</text>")
    return len(labels) * LEGEND_ROW


# ---- linear and scatter -----------------------------------------------------------------

def _xy(chart: Chart, lines: bool) -> tuple[list[str], int, int]:
    width = WIDTH
    points = [p for s in chart.series for p in s.points]
    numeric_x = all(isinstance(x, float) for x, _ in points)
    cats = [] if numeric_x else _categories([x for x, _ in points])
    where = {c: float(i) for i, c in enumerate(cats)}

    def xval(x: Value) -> float:
        return x if isinstance(x, float) else where[x]

    if numeric_x:
        xs = Scale([float(x) for x, _ in points], LEFT, width - RIGHT)
        x_ticks = [(xs(t), label(t)) for t in xs.ticks]
    else:
        xs = Scale([-0.5, len(cats) - 0.5], LEFT, width - RIGHT)
        xs.lo, xs.hi = -0.5, len(cats) - 0.5
        step = _every(len(cats))
        x_ticks = [(xs(i), label(c)) for i, c in enumerate(cats) if i % step == 0]
    ys = Scale([float(y) for _, y in points], TOP + HEIGHT, TOP)
    out: list[str] = []
    _y_axis(out, [(ys(t), label(t)) for t in ys.ticks], chart.y_label, width)
    _x_axis(out, x_ticks, TOP + HEIGHT, chart.x_label, width)
    for i, s in enumerate(chart.series):
        colour = PALETTE[i % len(PALETTE)]
        drawn = [(xs(xval(x)), ys(float(y))) for x, y in s.points]
        if lines:  # as Vega-Lite draws a line: in order of x
            drawn.sort(key=lambda p: p[0])
            coords = " ".join(f"{num(px)},{num(py)}" for px, py in drawn)
            out.append(f'<polyline class="series" fill="none" stroke="{colour}" '
                       f'stroke-width="2" points="{coords}"/>')
        if not lines or len(drawn) <= MARKERS_UP_TO:
            out += [f'<circle cx="{num(px)}" cy="{num(py)}" r="{3 if lines else 3.5}" '
                    f'fill="{colour}"/>' for px, py in drawn]
    used = _legend(out, [s.label for s in chart.series], TOP + HEIGHT + BOTTOM)
    return out, width, int(TOP + HEIGHT + BOTTOM + used + 8)


# ---- horizontal bars --------------------------------------------------------------------

def _bars(chart: Chart, by_value: bool) -> tuple[list[str], int, int]:
    """DVC's bar_horizontal: y names a category, x is the bar's length."""
    width = WIDTH
    values: dict[Value, list[float | None]] = {}
    n = len(chart.series)
    for i, s in enumerate(chart.series):
        for x, y in s.points:
            if isinstance(x, float):
                values.setdefault(y, [None] * n)[i] = x
    if not values:
        raise PlotError("a bar_horizontal plot needs numbers on x",
                        hint="set `x:` to a numeric field and `y:` to the category field")
    cats = list(values)
    if by_value:
        cats.sort(key=lambda c: -max(v for v in values[c] if v is not None))
    xs = Scale([v for c in cats for v in values[c] if v is not None], LEFT, width - RIGHT,
               zero=True)
    band = HEIGHT / len(cats)
    out: list[str] = []
    _x_axis(out, [(xs(t), label(t)) for t in xs.ticks], TOP + HEIGHT, chart.x_label, width)
    step = _every(len(cats), 40)
    _y_axis(out, [(TOP + (j + 0.5) * band, label(c)) for j, c in enumerate(cats)
                  if j % step == 0], chart.y_label, width)
    for j, c in enumerate(cats):
        for i, v in enumerate(values[c]):
            if v is None:
                continue
            x0, x1 = sorted((xs(0.0), xs(v)))
            y = TOP + j * band + band * 0.1 + i * band * 0.8 / n
            out.append(f'<rect x="{num(x0)}" y="{num(y)}" width="{num(x1 - x0)}" '
                       f'height="{num(band * 0.8 / n)}" fill="{PALETTE[i % len(PALETTE)]}"/>')
    used = _legend(out, [s.label for s in chart.series], TOP + HEIGHT + BOTTOM)
    return out, width, int(TOP + HEIGHT + BOTTOM + used + 8)


# ---- confusion matrix -------------------------------------------------------------------

def _sorted_classes(values: list[Value]) -> list[Value]:
    distinct = set(values)
    if all(isinstance(v, float) for v in distinct):
        return sorted(distinct, key=float)
    return sorted(distinct, key=str)


def _confusion(chart: Chart, normalized: bool) -> tuple[list[str], int, int]:
    """One matrix per series (per revision in a diff), side by side: columns are the
    x values (actual), rows the y values (predicted), each cell the count of pairs (the
    fraction of the column's pairs, normalized)."""
    classes = _sorted_classes([v for s in chart.series for p in s.points for v in p])
    if len(classes) > MAX_CLASSES:
        raise PlotError(f"a confusion matrix of {len(classes)} classes is too large to draw "
                        f"(at most {MAX_CLASSES})",
                        hint="check that x and y name the actual and predicted classes")
    k = len(classes)
    cell = max(8.0, min(48.0, HEIGHT / max(k, 1)))
    side = cell * k
    gap = 110.0
    width = int(LEFT + len(chart.series) * (side + gap))
    out: list[str] = []
    for m, s in enumerate(chart.series):
        left = LEFT + m * (side + gap)
        counts: dict[tuple[Value, Value], int] = {}
        totals: dict[Value, int] = {}
        for x, y in s.points:
            counts[(x, y)] = counts.get((x, y), 0) + 1
            totals[x] = totals.get(x, 0) + 1
        most = max(counts.values(), default=1)
        out.append(f'<text class="legend" x="{num(left)}" y="{TOP - 6}">{esc(s.label)}</text>')
        for c, actual in enumerate(classes):
            for r, predicted in enumerate(classes):
                count = counts.get((actual, predicted), 0)
                share = count / totals[actual] if totals.get(actual) else 0.0
                level = share if normalized else count / most
                text = f"{share:.2f}" if normalized else str(count)
                x, y = left + c * cell, TOP + r * cell
                out.append(f'<rect x="{num(x)}" y="{num(y)}" width="{num(cell)}" '
                           f'height="{num(cell)}" fill="{_blue(level)}" stroke="#ffffff"/>')
                if cell >= 20:
                    ink = "#ffffff" if level > 0.5 else "#000000"
                    out.append(f'<text class="cell" x="{num(x + cell / 2)}" '
                               f'y="{num(y + cell / 2 + 4)}" text-anchor="middle" '
                               f'fill="{ink}">{text}</text>')
        step = _every(k, 30)
        for i, name in enumerate(classes):
            if i % step:
                continue
            out.append(f'<text x="{num(left + (i + 0.5) * cell)}" y="{num(TOP + side + 16)}" '
                       f'text-anchor="middle">{esc(label(name))}</text>')
            out.append(f'<text x="{num(left - 6)}" y="{num(TOP + (i + 0.5) * cell + 4)}" '
                       f'text-anchor="end">{esc(label(name))}</text>')
        out.append(f'<text x="{num(left + side / 2)}" y="{num(TOP + side + 36)}" '
                   f'text-anchor="middle">{esc(chart.x_label)}</text>')
    middle = TOP + side / 2
    out.append(f'<text x="18" y="{num(middle)}" text-anchor="middle" '
               f'transform="rotate(-90 18 {num(middle)})">{esc(chart.y_label)}</text>')
    return out, max(width, 320), int(TOP + side + 48)


def _blue(level: float) -> str:
    """White (0) to dark blue (1)."""
    level = min(max(level, 0.0), 1.0)
    r, g, b = (round(255 + (t - 255) * level) for t in (8, 69, 148))
    return f"#{r:02x}{g:02x}{b:02x}"
