"""Self-contained HTML building blocks: a page with inline CSS, tables, and plots drawn as inline SVG.

Nothing here loads anything from outside the page (no scripts, fonts, stylesheets or images), so a report opens
offline. `table`, `paragraph` and the plots escape the text they are given; `page` and `section` take HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence

# CSS classes a table's row_class may return, one per verdict (verdict "not comparable" -> "not-comparable")
ROW_CLASSES = ("regressed", "improved", "unchanged", "not-comparable")
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("7 4", "3 3", "10 3 2 3")  # line styles of the 2nd, 3rd, ... series

WIDTH, PLOT_HEIGHT = 540, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 50  # margins around the plotting area
LEGEND_LINE = 18

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 108rem;
       padding: 0 1rem; color: #1b1b1b; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
.subtitle { color: #555; margin-top: 0; }
section { margin: 2rem 0; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.regressed td { background: #fde2e1; }
tr.improved td { background: #e3f5e1; }
tr.unchanged td { background: #fff; }
tr.not-comparable td { background: #f1f1f1; color: #666; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
svg.plot { max-width: 100%; height: auto; border: 1px solid #eee; background: #fff; }
svg.plot text { font-family: inherit; font-size: 11px; fill: #333; }
svg.plot .title { font-size: 13px; font-weight: 600; }
svg.plot .axis { stroke: #333; stroke-width: 1; }
svg.plot .grid { stroke: #e5e5e5; stroke-width: 1; }
svg.plot .empty { fill: #888; font-style: italic; }
"""


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, blocks: Sequence[str], *, subtitle: str = "") -> str:
    """A complete HTML document: `title` and `subtitle` are escaped, `blocks` are inserted as they are (HTML)."""
    sub = f'<p class="subtitle">{escape(subtitle)}</p>\n' if subtitle else ""
    body = "\n".join(blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{escape(title)}</h1>\n{sub}{body}\n</body>\n</html>\n")


def section(heading: str, body_html: str) -> str:
    """A titled section; the heading is escaped, the body is HTML."""
    return f"<section>\n<h2>{escape(heading)}</h2>\n{body_html}\n</section>"


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def details(summary: str, body_html: str) -> str:
    """A block the reader opens (no script): the summary is escaped, the body is HTML."""
    return f"<details>\n<summary>{escape(summary)}</summary>\n{body_html}\n</details>"


def plots(blocks: Sequence[str], *, heading: str = "") -> str:
    """Plots side by side, wrapping to the page width, under an optional (escaped) small heading."""
    head = f"<h3>{escape(heading)}</h3>\n" if heading else ""
    return f'{head}<div class="plots">\n' + "\n".join(blocks) + "\n</div>"


def table(columns: Sequence[str], rows: Sequence[Mapping[str, object]], *, caption: str = "",
          row_class: Callable[[Mapping[str, object]], str] | None = None) -> str:
    """A table of `columns`; a row's missing key is an empty cell; every cell's text is escaped."""
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    lines = ["<table>", f"<caption>{escape(caption)}</caption>" if caption else "",
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        css = row_class(row) if row_class else ""
        attr = f' class="{escape(css)}"' if css else ""
        cells = "".join(f"<td>{escape(_cell(row.get(c)))}</td>" for c in columns)
        lines.append(f"<tr{attr}>{cells}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(line for line in lines if line)


def verdict_class(verdict: str) -> str:
    """The row CSS class of a verdict ("not comparable" -> "not-comparable"); "" for anything else."""
    css = verdict.strip().lower().replace(" ", "-")
    return css if css in ROW_CLASSES else ""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


# ------------------------------------------------------------------------------------------------ plot scaffolding

def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about `count` of them (1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got [{low}, {high}]")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value < high + step * (1 - 1e-9):
        ticks.append(round(value, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.4g}"


class _Frame:
    """Maps data coordinates to pixels inside the plotting area."""

    def __init__(self, x_range: tuple[float, float], y_ticks: Sequence[float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]
        self.width, self.height = WIDTH - LEFT - RIGHT, PLOT_HEIGHT - TOP - BOTTOM

    def x(self, value: float) -> float:
        span = self.x1 - self.x0
        return LEFT + (self.width * (value - self.x0) / span if span else self.width / 2)

    def y(self, value: float) -> float:
        return TOP + self.height * (1 - (value - self.y0) / (self.y1 - self.y0))


def _fit(text: str, pixels: float, char_width: float) -> str:
    """`text` cut to about `pixels` wide (SVG text does not wrap), with an ellipsis where cut."""
    most = max(int(pixels / char_width), 4)
    return text if len(text) <= most else text[:most - 1] + "…"


def _svg(title: str, body: list[str], legend: Sequence[str]) -> str:
    """The plot's frame: its (full) title as tooltip, the visible title and legend cut to the plot's width."""
    height = PLOT_HEIGHT + LEGEND_LINE * len(legend) + (8 if legend else 0)
    items = []
    for i, name in enumerate(legend):
        y = PLOT_HEIGHT + 4 + LEGEND_LINE * i
        colour = PALETTE[i % len(PALETTE)]
        items.append(f'<g class="legend-item"><title>{escape(name)}</title>'
                     f'<rect x="{LEFT}" y="{y}" width="14" height="10" fill="{colour}"/>'
                     f'<text x="{LEFT + 20}" y="{y + 9}">{escape(_fit(name, WIDTH - LEFT - 30, 6.2))}</text></g>')
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>'
            f'<text class="title" x="{WIDTH / 2}" y="18" text-anchor="middle">{escape(_fit(title, WIDTH - 20, 7.4))}'
            "</text>" + "".join(body) + "".join(items) + "</svg>")


def _y_axis(frame: _Frame, ticks: Sequence[float], label: str) -> list[str]:
    out = [f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + frame.height}"/>']
    for tick in ticks:
        y = frame.y(tick)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + frame.width}" y2="{y:.1f}"/>'
                   f'<line class="axis" x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}"/>'
                   f'<text x="{LEFT - 7}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    middle = TOP + frame.height / 2
    out.append(f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">'
               f"{escape(label)}</text>")
    return out


def _x_axis_line(frame: _Frame, label: str) -> list[str]:
    bottom = TOP + frame.height
    return [f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{LEFT + frame.width}" y2="{bottom}"/>',
            f'<text x="{LEFT + frame.width / 2:.1f}" y="{PLOT_HEIGHT - 8}" text-anchor="middle">{escape(label)}</text>']


def _empty(title: str) -> str:
    return _svg(title, [f'<text class="empty" x="{WIDTH / 2}" y="{PLOT_HEIGHT / 2}" text-anchor="middle">'
                        "no data to plot</text>"], [])


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _numeric_axes(xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str) -> tuple[_Frame, list[str]]:
    """The frame and both axes, with ticks, of a plot over numeric x and y."""
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    frame = _Frame((x_ticks[0], x_ticks[-1]), y_ticks)
    body = _y_axis(frame, y_ticks, y_label) + _x_axis_line(frame, x_label)
    bottom = TOP + frame.height
    for tick in x_ticks:
        x = frame.x(tick)
        body.append(f'<line class="axis" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}"/>'
                    f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_label(tick)}</text>')
    return frame, body


# ------------------------------------------------------------------------------------------------ the plots

def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, x_label: str, y_label: str
              ) -> str:
    """One polyline (with point markers) per series over numeric x; non-finite points are left out."""
    clean = {name: sorted((float(x), float(y)) for x, y in points if _finite(x, y))
             for name, points in series.items()}
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    if not xs:
        return _empty(title)
    frame, body = _numeric_axes(xs, ys, x_label, y_label)
    for i, points in enumerate(clean.values()):
        colour = PALETTE[i % len(PALETTE)]
        # identical series must stay visible on top of each other: each later one thinner, and dashed
        width, radius = max(3.2 - 0.8 * i, 1.0), max(3.6 - 0.8 * i, 1.6)
        dash = f' stroke-dasharray="{DASHES[(i - 1) % len(DASHES)]}"' if i else ""
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        body.append(f'<g class="series"><polyline points="{coords}" fill="none" stroke="{colour}" '
                    f'stroke-width="{width:.1f}"{dash}/>')
        if len(points) <= 40:  # markers only where they stay readable
            body += [f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="{radius:.1f}" fill="{colour}"/>'
                     for x, y in points]
        body.append("</g>")
    return _svg(title, body, list(clean))


def point_plot(series: Mapping[str, Sequence[tuple[str, float, float]]], *, title: str, y_label: str,
               categories: Sequence[str] = ()) -> str:
    """Categories on x (`categories` first, then others in order of first appearance), one marker per (category,
    value) with an error bar of ± spread; a series' points are joined by a thin line, series sit side by side."""
    clean = {name: [(str(c), float(v), abs(float(s)) if _finite(s) else 0.0) for c, v, s in points if _finite(v)]
             for name, points in series.items()}
    if not any(clean.values()):
        return _empty(title)
    order = list(dict.fromkeys(categories))
    for points in clean.values():
        order += [c for c, _, _ in points if c not in order]
    lows = [v - s for points in clean.values() for _, v, s in points]
    highs = [v + s for points in clean.values() for _, v, s in points]
    y_ticks = nice_ticks(min(lows), max(highs))
    frame = _Frame((-0.5, len(order) - 0.5), y_ticks)
    body = _y_axis(frame, y_ticks, y_label) + _x_axis_line(frame, "")
    bottom = TOP + frame.height
    for i, category in enumerate(order):
        x = frame.x(i)
        body.append(f'<line class="axis" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}"/>'
                    f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(category)}</text>')
    band = frame.width / len(order) * 0.5  # the share of a category the series spread over
    count = len(clean)
    for i, points in enumerate(clean.values()):
        colour = PALETTE[i % len(PALETTE)]
        offset = (i - (count - 1) / 2) * (band / max(count, 1))
        placed = [(frame.x(order.index(c)) + offset, v, s) for c, v, s in points]
        body.append('<g class="series">')
        if len(placed) > 1:
            coords = " ".join(f"{x:.1f},{frame.y(v):.1f}" for x, v, _ in placed)
            body.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1" '
                        f'stroke-opacity="0.5"/>')
        for x, v, s in placed:
            top, low = frame.y(v + s), frame.y(v - s)
            body.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{low:.1f}" stroke="{colour}" '
                        f'stroke-width="1.5"/>'
                        f'<line x1="{x - 4:.1f}" y1="{top:.1f}" x2="{x + 4:.1f}" y2="{top:.1f}" stroke="{colour}"/>'
                        f'<line x1="{x - 4:.1f}" y1="{low:.1f}" x2="{x + 4:.1f}" y2="{low:.1f}" stroke="{colour}"/>'
                        f'<circle cx="{x:.1f}" cy="{frame.y(v):.1f}" r="3.5" fill="{colour}">'
                        f"<title>{escape(f'{v:.4g} ± {s:.2g}')}</title></circle>")
        body.append("</g>")
    return _svg(title, body, list(clean))


def series_plot(points: Sequence[tuple[float, float, float, float]], *, title: str, x_label: str, y_label: str,
                marks: Sequence[tuple[float, str, str]] = ()) -> str:
    """One series over numeric x: a marker per (x, value) with a bar from low to high (e.g. the seeds' spread),
    joined by a line, and a dashed vertical line at each mark's x (e.g. a detected change) with its label and a
    tooltip."""
    clean = sorted((float(x), float(v), float(lo), float(hi)) for x, v, lo, hi in points if _finite(x, v, lo, hi))
    if not clean:
        return _empty(title)
    xs = [x for x, *_ in clean] + [x for x, *_ in marks if _finite(x)]
    frame, body = _numeric_axes(xs, [lo for _, _, lo, _ in clean] + [hi for *_, hi in clean], x_label, y_label)
    bottom = TOP + frame.height
    mark_colour = PALETTE[1]
    for i, (at, label, tooltip) in enumerate(m for m in marks if _finite(m[0])):
        x = frame.x(at)
        body.append(f'<g class="mark"><title>{escape(f"{label}. {tooltip}")}</title>'
                    f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="{mark_colour}" '
                    'stroke-width="2" stroke-dasharray="5 3"/>'
                    f'<text x="{x + 3:.1f}" y="{TOP + 12 + 12 * (i % 3)}" fill="{mark_colour}">'
                    f"{escape(_fit(label, 170, 6.2))}</text></g>")
    colour = PALETTE[0]
    coords = " ".join(f"{frame.x(x):.1f},{frame.y(v):.1f}" for x, v, _, _ in clean)
    body.append(f'<g class="series"><polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    radius = 3.0 if len(clean) <= 90 else 1.8
    for x, v, lo, hi in clean:
        px = frame.x(x)
        if hi > lo:
            body.append(f'<line x1="{px:.1f}" y1="{frame.y(hi):.1f}" x2="{px:.1f}" y2="{frame.y(lo):.1f}" '
                        f'stroke="{colour}" stroke-width="1.2"/>')
        body.append(f'<circle cx="{px:.1f}" cy="{frame.y(v):.1f}" r="{radius}" fill="{colour}">'
                    f"<title>{escape(f'{_label(x)}: {v:.4g} ({lo:.4g} .. {hi:.4g})')}</title></circle>")
    body.append("</g>")
    return _svg(title, body, [])
