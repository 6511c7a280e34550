"""Server-rendered SVG charts for the command board: no script, no library.

Each chart is a ``<svg>`` with a ``viewBox`` 400 units wide, so it scales to a
phone's width as well as a desktop card's; a ``<title>`` names it for screen
readers and each mark has its own ``<title>`` with the exact figure. Colours
come from the stylesheet's ``.s0``-``.s3`` classes. Bar labels sit above their
bars rather than beside them, so long names need no room on the left.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 400
BAR_H = 16
LABEL_H = 18
GAP = 10
VALUE_W = 44


def _fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.0f}%" if percent else f"{value:g}"


def text_width(text: str, size: float = 13) -> float:
    """A rough width: CJK characters are square, others about half."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.58 for ch in text)


def _legend(series: Sequence[str], y: float) -> tuple[list[str], float]:
    """Legend marks, wrapping onto more lines when needed; (svg parts, height used)."""
    out: list[str] = []
    x, line = 0.0, 0
    for i, name in enumerate(series):
        width = 20 + text_width(name) + 14
        if x and x + width > WIDTH:
            x, line = 0.0, line + 1
        top = y + line * 20
        out.append(
            f'<rect class="s{i}" x="{x:.0f}" y="{top + 2:.0f}" width="13" height="13" rx="2"/>'
        )
        out.append(
            f'<text class="legend" x="{x + 18:.0f}" y="{top + 13:.0f}">{escape(name)}</text>'
        )
        x += width
    return out, (line + 1) * 20 + 6 if series else 0


def bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    *,
    percent: bool = True,
    empty: str = "—",
) -> Markup:
    """Horizontal bars: one group per row (its label above), one bar per series.

    With ``percent`` values are fractions 0..1; otherwise counts, scaled to the largest.
    """
    n = max(1, len(series))
    legend, legend_h = _legend(series, 0) if n > 1 else ([], 0.0)
    group_h = LABEL_H + n * BAR_H + GAP
    height = legend_h + max(1, len(rows)) * group_h
    top = 1.0 if percent else max([1.0, *(v for _, vals in rows for v in vals if v is not None)])
    span = WIDTH - VALUE_W
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *legend,
    ]
    if not rows:
        out.append(f'<text class="empty" x="0" y="{legend_h + 18:.0f}">{escape(empty)}</text>')
    for r, (label, values) in enumerate(rows):
        y0 = legend_h + r * group_h
        out.append(f'<text class="label" x="0" y="{y0 + 13:.0f}">{escape(label)}</text>')
        for i, value in enumerate(values):
            y = y0 + LABEL_H + i * BAR_H
            w = 0.0 if value is None else max(0.0, min(1.0, value / top)) * span
            text = _fmt(value, percent)
            name = series[i] if i < len(series) else ""
            out.append(
                f'<rect class="s{i}" x="0" y="{y:.0f}" width="{max(w, 1.5):.1f}" '
                f'height="{BAR_H - 3}" rx="2"><title>{escape(label)} · {escape(name)}: '
                f"{text}</title></rect>"
            )
            out.append(f'<text class="value" x="{w + 5:.1f}" y="{y + BAR_H - 5:.0f}">{text}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
) -> Markup:
    """A line per series over the same x labels (whole counts)."""
    legend, legend_h = _legend([name for name, _ in series], 0)
    left, right, bottom = 30, 10, 26
    plot_h = 170
    top_pad = legend_h + 8
    height = top_pad + plot_h + bottom
    plot_w = WIDTH - left - right
    highest = max([1, *(v for _, vals in series for v in vals)])
    tick = -(-highest // 4)  # whole-number ticks: 4 steps of ceil(highest / 4)
    peak = tick * 4
    step = plot_w / max(1, len(labels) - 1)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *legend,
    ]
    for k in range(5):
        y = top_pad + plot_h - plot_h * k / 4
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick * k}</text>'
        )
    every = max(1, -(-len(labels) // 6))
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every:
            continue
        xi = left + i * step
        out.append(
            f'<text class="tick" x="{xi:.1f}" y="{height - 8:.0f}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    for s, (name, values) in enumerate(series):
        points = [
            (left + i * step, top_pad + plot_h - plot_h * v / peak) for i, v in enumerate(values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline class="line l{s}" points="{path}"/>')
        for (px, py), value, label in zip(points, values, labels, strict=False):
            out.append(
                f'<circle class="s{s}" cx="{px:.1f}" cy="{py:.1f}" r="3">'
                f"<title>{escape(label)} · {escape(name)}: {value}</title></circle>"
            )
    out.append("</svg>")
    return Markup("".join(out))
