"""The quantization report as one self-contained HTML file: matplotlib charts embedded as PNG.

Charts: the fp32-vs-int8 cosine of every quantized layer in graph order, then per quantized layer
the histogram of its input ``|x|`` with the threshold the model uses and those of ``kl``, ``aciq``
and ``minmax`` marked.  Tables: accuracy and agreement, model sizes, layers kept fp32 and why.
matplotlib is the optional extra ``ncnnc[report]``.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.evaluate import quantized_count_line
from ncnnc.core.fileio import atomic_outputs
from ncnnc.core.report import LayerActivation, QuantizationReport

MARKS = {"chosen": ("#d62728", "-"), "kl": ("#1f77b4", "--"), "aciq": ("#2ca02c", ":"), "minmax": ("#7f7f7f", "-.")}
"""Colour and line style of each threshold mark."""

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
img.chart { display: block; margin: 0.5em 0; max-width: 100%; }
.layers { display: flex; flex-wrap: wrap; gap: 0.5em; }
.layers img.chart { width: 360px; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var charts = document.querySelectorAll("img.chart");
  var ok = 0;
  charts.forEach(function (c) { if (c.complete && c.naturalWidth > 0) ok += 1; });
  document.body.setAttribute("data-charts-rendered", ok + "/" + charts.length);
});
"""
"""Marks the page with how many charts the browser decoded and drew (the report test reads it)."""


def _figure(width: float, height: float):
    """A matplotlib figure (no pyplot state: nothing to close, no display needed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NcnncError("the report needs matplotlib: pip install 'ncnnc[report]'") from None
    return Figure(figsize=(width, height))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def cosine_chart(report: QuantizationReport) -> str:
    """Bar chart of the per-layer cosine fp32 vs int8 in graph order (fp32 layers grey at 1)."""
    names = [layer.name for layer in report.layers]
    values = [layer.cosine if layer.cosine is not None else 1.0 for layer in report.layers]
    colors = ["#bbbbbb" if layer.kept_fp32 else "#1f77b4" for layer in report.layers]
    fig = _figure(max(6.0, 0.3 * len(names) + 2), 4.2)
    ax = fig.add_subplot()
    ax.bar(range(len(names)), values, color=colors)
    low = min(values, default=1.0)
    ax.set_ylim(max(0.0, low - 0.1 * (1 - low) - 0.001), 1.0005)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel("cosine fp32 vs int8")
    ax.set_title("per-layer output cosine, graph order (grey: kept fp32)")
    fig.subplots_adjust(left=0.08, right=0.99, top=0.92, bottom=0.32)
    return _png(fig)


def histogram_chart(layer: LayerActivation) -> str:
    """The ``|x|`` histogram of one layer's input with the thresholds marked."""
    fig = _figure(4.5, 2.8)
    ax = fig.add_subplot()
    counts = np.asarray(layer.counts, np.float64)
    edges = np.linspace(0, layer.absmax, len(counts) + 1) if layer.absmax > 0 else np.arange(len(counts) + 1)
    ax.stairs(counts, edges, fill=True, color="#9ecae1")
    ax.set_yscale("symlog", linthresh=1)
    marks = dict(layer.alternatives)
    if layer.chosen is not None:
        marks = {"chosen": layer.chosen, **marks}
    for name, value in marks.items():
        color, style = MARKS.get(name, ("#000000", "-"))
        ax.axvline(value, color=color, linestyle=style, linewidth=1.4, label=f"{name} {value:.3g}")
    ax.legend(fontsize=6, loc="upper right")
    cos = f", cos {layer.cosine:.4f}" if layer.cosine is not None else ""
    ax.set_title(f"{layer.name}{cos}" + (" (fp32)" if layer.kept_fp32 else ""), fontsize=8)
    ax.set_xlabel("|x|", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.12, right=0.98, top=0.9, bottom=0.16)
    return _png(fig)


def _table(rows: list[list[str]], head: list[str] | None = None) -> str:
    cells = f"<tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{cells}{body}</table>"


def render(report: QuantizationReport) -> str:
    """The whole HTML document."""
    _figure(1, 1)  # matplotlib missing: one line before any work
    ev = report.evaluation
    acc = []
    if ev.top1:
        acc = [[m, f"{100 * ev.top1[m]:.1f} %", f"{100 * ev.top5[m]:.1f} %"] for m in ("fp32", "int8")]
    ratio = report.int8_bytes / report.fp32_bytes if report.fp32_bytes else 0.0
    kept = [layer for layer in report.layers if layer.kept_fp32]
    parts = [
        f"<h1>{html.escape(report.title)}</h1>",
        f"<p>{ev.images} images compared ({html.escape(ev.backend)} backend); activation statistics over "
        f"{report.images} images{'; calibration method ' + html.escape(report.method) if report.method else ''}. "
        f"{html.escape(quantized_count_line(len(ev.layer_cosine), len(ev.weight_only), len(ev.kept_fp32)))}.</p>",
        "<h2>Accuracy</h2>",
        _table(acc, ["model", "top-1", "top-5"]) if acc else "<p>No labels given: no top-1/top-5.</p>",
        _table([["top-1 agreement fp32 vs int8", f"{100 * ev.agreement:.1f} %"],
                ["largest output difference", f"{ev.max_output_diff:.4g}"]]),
        "<h2>Model size</h2>",
        _table([["fp32 .bin", f"{report.fp32_bytes} bytes"], ["int8 .bin", f"{report.int8_bytes} bytes"],
                ["ratio", f"{ratio:.3f}"]]),
        "<h2>Layers kept fp32</h2>",
        _table([[layer.name, layer.kept_fp32 or ""] for layer in kept], ["layer", "why"]) if kept
        else "<p>None: every quantizable layer is int8.</p>",
        "<h2>Per-layer cosine, fp32 vs int8</h2>",
        _img(cosine_chart(report), "per-layer cosine"),
        "<h2>Activations and thresholds</h2>",
        "<p>Histogram of each quantized layer's input |x| (log scale) with the threshold the int8 model uses "
        "(<b>chosen</b>, red) and what kl, aciq and minmax choose on the same activations.</p>",
        '<div class="layers">',
        *(_img(histogram_chart(layer), f"activations of {layer.name}") for layer in report.layers),
        "</div>",
    ]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(report.title)}</title><style>{STYLE}</style><script>{SCRIPT}</script>"
            "</head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_html(report: QuantizationReport, path: str | Path) -> Path:
    """Write the report to ``path`` (whole or not at all); returns the path."""
    text = render(report)
    path = Path(path)
    with atomic_outputs(path) as (tmp,):
        tmp.write_text(text)
    return path
