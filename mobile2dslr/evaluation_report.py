"""Write an evaluation's results: ``metrics.csv``, ``means.csv``, ``report.md``, ``report.html``, ``bar_chart.png``.

Every file is written atomically (:func:`datamodules.io.write_file_atomic`), so a reader
never sees half a report.
"""

import csv
import html
import io
import math
from pathlib import Path
from typing import Sequence

from datamodules.io import write_file_atomic

__all__ = ["METRICS", "means_table", "write_report", "format_value"]

#: (key, label, higher is better) of every metric, in report order.
METRICS: tuple[tuple[str, str, bool], ...] = (("psnr", "PSNR (dB) ↑", True), ("ssim", "SSIM ↑", True), ("lpips", "LPIPS ↓", False))
_DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4}


def format_value(key: str, value: float) -> str:
    """A metric value as the reports show it (``inf`` PSNR for identical images)."""
    return "inf" if math.isinf(value) else f"{value:.{_DIGITS[key]}f}"


def _best(values: dict[str, float], higher: bool) -> set[str]:
    if not values:
        return set()
    top = max(values.values()) if higher else min(values.values())
    return {name for name, value in values.items() if value == top}


def means_table(means: dict[str, dict[str, float]], bold: str = "**") -> list[str]:
    """Markdown lines of the per-method means, the best of each metric wrapped in ``bold``."""
    best = {key: _best({m: v[key] for m, v in means.items()}, higher) for key, _, higher in METRICS}
    lines = ["| method | " + " | ".join(label for _, label, _ in METRICS) + " | images |", "|---|" + "---:|" * (len(METRICS) + 1)]
    for method, values in means.items():
        cells = [
            f"{bold}{format_value(key, values[key])}{bold}" if method in best[key] and bold else format_value(key, values[key])
            for key, _, _ in METRICS
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {int(values['images'])} |")
    return lines


def _per_image(rows: Sequence[dict]) -> dict[str, list[dict]]:
    images: dict[str, list[dict]] = {}
    for row in rows:
        images.setdefault(row["image"], []).append(row)
    return images


def _markdown(title: str, notes: Sequence[str], means, rows, columns, strips: dict[str, str], failures) -> str:
    lines = [f"# {title}", "", *notes, "", "## Means over images", "", *means_table(means), ""]
    if failures:
        lines += [f"## Skipped ({len(failures)})", "", *[f"- {line}" for line in failures], ""]
    lines += ["## Per image", "", f"Side by side (centre crops): {' | '.join(columns)}.", ""]
    for image, image_rows in _per_image(rows).items():
        best = {key: _best({r["method"]: r[key] for r in image_rows}, higher) for key, _, higher in METRICS}
        lines += [f"### {image}", "", "| method | " + " | ".join(label for _, label, _ in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
        for row in image_rows:
            cells = [f"**{format_value(k, row[k])}**" if row["method"] in best[k] else format_value(k, row[k]) for k, _, _ in METRICS]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        if image in strips:
            lines += ["", f"![{image}: {' | '.join(columns)}]({strips[image]})"]
        lines.append("")
    return "\n".join(lines)


def _html_table(header: Sequence[str], body: Sequence[Sequence[tuple[str, bool]]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{'<b>' if bold else ''}{html.escape(text)}{'</b>' if bold else ''}</td>" for text, bold in row) + "</tr>"
        for row in body
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _html(title: str, notes: Sequence[str], means, rows, columns, strips: dict[str, str], failures) -> str:
    header = ["method", *[label for _, label, _ in METRICS], "images"]
    best = {key: _best({m: v[key] for m, v in means.items()}, higher) for key, _, higher in METRICS}
    body = [
        [(method, False), *[(format_value(k, v[k]), method in best[k]) for k, _, _ in METRICS], (str(int(v["images"])), False)]
        for method, v in means.items()
    ]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%;image-rendering:pixelated}.cols{display:flex}.cols span{flex:1;text-align:center}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(note.replace('`', ''))}</p>" for note in notes],
        "<h2>Means over images</h2>", _html_table(header, body), "<img src='bar_chart.png' alt='bar chart of the means'>",
    ]
    if failures:
        parts += [f"<h2>Skipped ({len(failures)})</h2><ul>", *[f"<li>{html.escape(line)}</li>" for line in failures], "</ul>"]
    parts.append("<h2>Per image</h2>")
    for image, image_rows in _per_image(rows).items():
        image_best = {key: _best({r["method"]: r[key] for r in image_rows}, higher) for key, _, higher in METRICS}
        body = [[(r["method"], False), *[(format_value(k, r[k]), r["method"] in image_best[k]) for k, _, _ in METRICS]] for r in image_rows]
        parts += [f"<h3>{html.escape(image)}</h3>", _html_table(header[:-1], body)]
        if image in strips:
            labels = "".join(f"<span>{html.escape(c)}</span>" for c in columns)
            parts.append(f"<div class='cols'>{labels}</div><img src='{html.escape(strips[image])}' alt='{html.escape(image)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _bar_chart(means: dict[str, dict[str, float]]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg only: no display, no pyplot state
    from matplotlib.figure import Figure

    methods = list(means)
    figure = Figure(figsize=(4 * len(METRICS), 0.5 * len(methods) + 2.5), layout="constrained")
    FigureCanvasAgg(figure)
    for axis, (key, label, _) in zip(figure.subplots(1, len(METRICS)), METRICS):
        values = [means[m][key] for m in methods]
        finite = [v for v in values if math.isfinite(v)] or [1.0]
        cap = max(finite) * 1.15 if max(finite) > 0 else 1.0
        shown = [min(v, cap) for v in values]
        bars = axis.barh(range(len(methods)), shown, color=["#888" if m == "input" else "#3b75af" for m in methods])
        for bar, value in zip(bars, values):
            axis.annotate(format_value(key, value), (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                          xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        axis.set_yticks(range(len(methods)), methods)
        axis.invert_yaxis()
        axis.set_title(label)
        axis.set_xlim(0, cap * 1.25)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_report(
    out: Path,
    rows: Sequence[dict],
    means: dict[str, dict[str, float]],
    columns: Sequence[str],
    strips: dict[str, str],
    failures: Sequence[str],
    title: str = "mobile2dslr evaluation",
    notes: Sequence[str] = (),
) -> None:
    """Write the evaluation files into ``out``.

    Args:
        out: the output folder (created).
        rows: one dict per (method, image): ``method, image, psnr, ssim, lpips``.
        means: per method, the means of each metric and ``images`` (how many were scored).
        columns: the side-by-side strips' columns, left to right.
        strips: image name → strip path relative to ``out``.
        failures: one line per skipped image.
        title: the report's title.
        notes: paragraphs under the title (data, conventions).
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["method", "image", "psnr", "ssim", "lpips"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in writer.fieldnames} for row in rows)
    write_file_atomic(out / "metrics.csv", text.getvalue().encode())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["method", "psnr", "ssim", "lpips", "images"])
    writer.writerows([method, v["psnr"], v["ssim"], v["lpips"], int(v["images"])] for method, v in means.items())
    write_file_atomic(out / "means.csv", text.getvalue().encode())
    write_file_atomic(out / "report.md", _markdown(title, notes, means, rows, columns, strips, failures).encode())
    write_file_atomic(out / "report.html", _html(title, notes, means, rows, columns, strips, failures).encode())
    write_file_atomic(out / "bar_chart.png", _bar_chart(means))
