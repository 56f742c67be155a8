"""Self-contained web pages: the reports a person opens in a browser or in a pipeline console.

One file per page, nothing fetched: styles in the page, images as `data:` URIs,
charts as inline SVG. The Kubeflow and Vertex AI consoles show a `system.HTML`
artifact's file in a sandboxed frame, where a page could load nothing else.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { font-size: 1.2em; font-weight: bold; }
.good { color: #1a7f37; } .bad { color: #b3261e; }
figure { display: inline-block; margin: .3em; width: 128px; font-size: 12px; }
figure img { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; }
svg text { font: 11px system-ui, sans-serif; }
"""
CHART_WIDTH, CHART_HEIGHT, MARGIN = 420, 220, 40
LEGEND_WIDTH = 110  # right of the plot
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def escape(value: object) -> str:
    return html.escape(str(value))


def page(title: str, sections: Iterable[str]) -> str:
    """The whole document."""
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def section(heading: str, *parts: str) -> str:
    return f"<section><h2>{escape(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def paragraph(text: str, css_class: str = "") -> str:
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def bullet_list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return escape("" if value is None else value)


def heat_table(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """A confusion matrix: rows the true class, columns the predicted; darker is more."""
    most = max((count for row in counts for count in row), default=0) or 1
    head = "<th>true \\ predicted</th>" + "".join(f"<th>{escape(name)}</th>" for name in labels)
    rows = []
    for name, row in zip(labels, counts):
        cells = "".join(
            f'<td style="background: rgba(31,119,180,{count / most:.2f}); '
            f'color: {"white" if count / most > 0.5 else "inherit"}">{count}</td>'
            for count in row
        )
        rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    body = "".join(rows)
    return f'<table class="confusion"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def image_data_uri(encoded: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(encoded).decode('ascii')}"


def figure(src: str, caption: str) -> str:
    text = escape(caption)
    return f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def line_chart(
    title: str, x: Sequence[float], series: dict[str, Sequence[float]], marks: Sequence[float] = ()
) -> str:
    """An SVG line chart of each series over x; `marks`: x values to draw a dashed line at."""
    values = [v for ys in series.values() for v in ys if not math.isnan(v)]
    if not x or not values:
        return paragraph(f"{title}: nothing recorded.")
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    first, last = min(x), max(x)
    span = (last - first) or 1

    def point(xv: float, yv: float) -> str:
        px = MARGIN + (xv - first) / span * (CHART_WIDTH - 2 * MARGIN - LEGEND_WIDTH)
        py = CHART_HEIGHT - MARGIN - (yv - low) / (high - low) * (CHART_HEIGHT - 2 * MARGIN)
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">',
        f'<text x="{MARGIN}" y="14">{escape(title)}</text>',
        f'<text x="2" y="{MARGIN}">{high:.3g}</text>',
        f'<text x="2" y="{CHART_HEIGHT - MARGIN}">{low:.3g}</text>',
        f'<text x="{MARGIN}" y="{CHART_HEIGHT - 8}">epoch {first:g}</text>',
        f'<text x="{CHART_WIDTH - MARGIN - LEGEND_WIDTH - 10}" y="{CHART_HEIGHT - 8}">'
        f"{last:g}</text>",
    ]
    for mark in marks:
        top, bottom = point(mark, high), point(mark, low)
        parts.append(
            f'<polyline points="{top} {bottom}" stroke="#999" stroke-dasharray="4" fill="none"/>'
        )
    for index, (name, ys) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = " ".join(point(xv, yv) for xv, yv in zip(x, ys) if not math.isnan(yv))
        parts.append(f'<polyline points="{points}" stroke="{colour}" fill="none"/>')
        legend_y = 30 + 14 * index
        parts.append(
            f'<text x="{CHART_WIDTH - LEGEND_WIDTH}" y="{legend_y}" fill="{colour}">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
