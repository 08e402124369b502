"""The self-contained HTML report of one reconstruction.

Data form: a :class:`ReportContent` (images as PIL images or uint8 arrays, metrics as the
comparison's JSON dictionary) in, one ``.html`` file out with every image embedded as a
base64 data URI, so the file can be mailed or archived alone. No patient identifiers go in:
inputs are described by file name and label only.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS, __version__

__all__ = ["Figure", "ReportContent", "render_html", "write_html_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.notice { background: #fff1f0; border: 2px solid #b00000; color: #8a0000; padding: 0.7rem 1rem;
          font-weight: 600; border-radius: 6px; }
.oracle { background: #b41414; color: white; padding: 0.5rem 1rem; border-radius: 6px; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; margin-top: 0.3rem; max-width: 440px; }
table { border-collapse: collapse; font-size: 0.9rem; }
td, th { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
td.value { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: #666; font-size: 0.85rem; }
"""


@dataclass(frozen=True, eq=False)
class Figure:
    """An image with a caption."""

    image: Image.Image | np.ndarray
    caption: str
    alt: str


@dataclass(frozen=True, eq=False)
class ReportContent:
    """Everything one report shows.

    Attributes
    ----------
    title : str
    summary : str
        One paragraph: what was reconstructed from what.
    oracle : bool
        True when the views were rendered from the reference (labelled prominently).
    sections : list of (heading, list of Figure)
        Picture sections in display order (slice, views, mesh renders…).
    metrics : dict, optional
        Metric name → value; ``*_mm`` / ``*_mm3`` suffixes give the unit.
    definitions : dict, optional
        Metric name → definition shown beside the value.
    tables : list of (heading, dict)
        Further key/value tables (inputs, parameters, versions, timings).
    warnings : list of str
    """

    title: str
    summary: str
    oracle: bool
    sections: list[tuple[str, list[Figure]]]
    metrics: dict | None = None
    definitions: dict = field(default_factory=dict)
    tables: list[tuple[str, dict]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _data_uri(image: Image.Image | np.ndarray) -> str:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _unit(name: str) -> str:
    for suffix, unit in (("_mm3", "mm³"), ("_mm", "mm")):
        if name.endswith(suffix):
            return unit
    return ""


def _format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, (int, float, np.floating, np.integer)):
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        magnitude = abs(value)
        if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
            return f"{value:.4g}"
        return f"{value:.4f}" if magnitude < 10 else f"{value:.2f}"
    if isinstance(value, dict):
        return "<br>".join(f"{html.escape(str(k))}: {_format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def _metrics_table(metrics: dict, definitions: dict) -> str:
    rows = []
    for name, value in metrics.items():
        if isinstance(value, dict) and name == "surface_dice":
            for tolerance, dice in value.items():
                key = f"surface_dice@{tolerance}mm"
                definition = definitions.get("surface_dice", "")
                rows.append((key, _format_value(dice), "", definition))
            continue
        if isinstance(value, (dict, list)):
            continue
        rows.append((name, _format_value(value), _unit(name), definitions.get(name, "")))
    body = "\n".join(
        f"<tr><td><code>{html.escape(n)}</code></td><td class=value>{v}</td><td>{html.escape(u)}</td>"
        f"<td class=muted>{html.escape(str(d))}</td></tr>"
        for n, v, u, d in rows
    )
    return f"<table><tr><th>metric</th><th>value</th><th>unit</th><th>definition</th></tr>\n{body}\n</table>"


def _key_value_table(data: dict) -> str:
    body = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_format_value(v)}</td></tr>" for k, v in data.items()
    )
    return f"<table>\n{body}\n</table>"


def render_html(content: ReportContent) -> str:
    """The report as one HTML string (images embedded)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(content.title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(content.title)}</h1>",
        f'<p class="notice" id="not-for-diagnosis">{html.escape(NOT_FOR_DIAGNOSIS)}</p>',
    ]
    if content.oracle:
        parts.append(
            '<p class="oracle" id="oracle-mode">ORACLE MODE: the six views were rendered from the reference '
            "segmentation, not generated by the diffusion model. The result measures the reconstruction and "
            "placement alone, as if view generation were perfect.</p>"
        )
    parts.append(f"<p>{html.escape(content.summary)}</p>")
    for warning in content.warnings:
        parts.append(f'<p class="muted">⚠ {html.escape(warning)}</p>')
    for heading, figures in content.sections:
        anchor = "".join(c if c.isalnum() else "-" for c in heading.lower())
        parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2><div class="figures">')
        for figure in figures:
            parts.append(
                f'<figure><img src="{_data_uri(figure.image)}" alt="{html.escape(figure.alt)}">'
                f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    if content.metrics is not None:
        parts.append('<h2 id="metrics">Comparison with the reference</h2>')
        parts.append(_metrics_table(content.metrics, content.definitions))
    for heading, data in content.tables:
        anchor = "".join(c if c.isalnum() else "-" for c in heading.lower())
        parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>{_key_value_table(data)}')
    parts.append(f'<p class="muted">Written by Wonder3DMed {html.escape(__version__)}.</p></body></html>')
    return "\n".join(parts)


def write_html_report(content: ReportContent, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(content), encoding="utf-8")
    return path
