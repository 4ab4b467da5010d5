"""Plots as plain SVG text (no matplotlib): a line plot with error bars and a two-group histogram.
The report inlines them in its HTML, so the page is one self-contained file."""

from __future__ import annotations

from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 320, 56, 150, 30, 44


def _frame(svg_id: str, title: str, y_label: str, x_label: str) -> list[str]:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(svg_id)}" class="plot" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<text x="14" y="{TOP + (H - TOP - BOTTOM) / 2}" transform="rotate(-90 14 {TOP + (H - TOP - BOTTOM) / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
        f'<text x="{LEFT + (W - LEFT - RIGHT) / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>',
    ]
    for k in range(6):  # y axis 0..1 with grid lines
        v = k / 5
        y = _y(v)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#333"/>')
    return out


def _y(v: float, top: float = 1.0) -> float:
    return H - BOTTOM - (v / top) * (H - TOP - BOTTOM)


def _legend(names: list[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 8 + 16 * i
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{W - RIGHT + 12}" y="{y - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{W - RIGHT + 26}" y="{y + 1}" class="legend">{escape(name)}</text>')
    return out


def line_plot(svg_id: str, title: str, x_labels: list[str], series: dict[str, list], y_label: str, x_label: str) -> str:
    """`series[name]` holds one (value, lo, hi) per x label (None where there is no data); values
    in [0, 1]. Error bars show [lo, hi]."""
    out = _frame(svg_id, title, y_label, x_label)
    n = max(1, len(x_labels))
    step = (W - LEFT - RIGHT) / n
    xs = [LEFT + step * (i + 0.5) for i in range(len(x_labels))]
    for x, label in zip(xs, x_labels, strict=True):
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    for i, (name, points) in enumerate(series.items()):
        colour, dx = PALETTE[i % len(PALETTE)], (i - (len(series) - 1) / 2) * 4  # dodge overlapping bars
        pts = [(x + dx, p) for x, p in zip(xs, points, strict=True) if p is not None and p[0] is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{_y(p[0]):.1f}" for x, p in pts)
            attrs = f'class="series" data-name="{escape(name)}" fill="none" stroke="{colour}" stroke-width="2"'
            out.append(f'<polyline {attrs} points="{path}"/>')
        for x, (v, lo, hi) in pts:
            if lo is not None:
                out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_y(lo):.1f}" y2="{_y(hi):.1f}" stroke="{colour}"/>')
            out.append(
                f'<circle cx="{x:.1f}" cy="{_y(v):.1f}" r="3.5" fill="{colour}"><title>{escape(name)}: {v:.2f}</title></circle>'
            )
    return "\n".join(out + _legend(list(series)) + ["</svg>"])


def histogram(svg_id: str, title: str, groups: dict[str, list[float]], bins: int = 10, x_label: str = "score") -> str:
    """Side-by-side bars of each group's share of values per bin of [0, 1]."""
    counts = {}
    for name, values in groups.items():
        c = [0] * bins
        for v in values:
            c[min(bins - 1, max(0, int(v * bins)))] += 1
        counts[name] = [k / max(1, len(values)) for k in c]
    out = _frame(svg_id, title, "share of episodes", x_label)
    width = (W - LEFT - RIGHT) / bins
    bar = width * 0.8 / max(1, len(groups))
    for b in range(bins + 1):
        if b % 2 == 0:
            out.append(f'<text x="{LEFT + b * width:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{b / bins:.1f}</text>')
    for i, (name, shares) in enumerate(counts.items()):
        colour = PALETTE[i % len(PALETTE)]
        for b, share in enumerate(shares):
            x = LEFT + b * width + width * 0.1 + i * bar
            out.append(f'<rect class="bar" x="{x:.1f}" y="{_y(share):.1f}" width="{bar:.1f}" height="{_y(0) - _y(share):.1f}" '
                       f'fill="{colour}"><title>{escape(name)}: {share:.0%}</title></rect>')  # fmt: skip
    names = [f"{n} (n={len(v)})" for n, v in groups.items()]
    return "\n".join(out + _legend(names) + ["</svg>"])
