"""MAC counts: ncnn's figure for SqueezeNet, and a Gemm."""

from __future__ import annotations

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.cost import graph_macs
from ncnnc.core.shapes import infer_shapes


def test_squeezenet_macs_as_ncnn_reports(squeezenet_dir, capsys):
    assert main(["inspect", str(squeezenet_dir / "squeezenet_v1.1.param"), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "MACs: 418,467,520 = 418.47 M" in out
    assert main(["inspect", str(squeezenet_dir / "squeezenet_v1.1.param"), "--summary", "--shape", "[224,224,3]"]) == 0
    assert "MACs: 418,467,520" not in capsys.readouterr().out


def test_gemm_and_innerproduct():
    b = GraphBuilder()
    a = b.input("a", (5, 7))
    m = b.input("m", (7, 3))
    g = b.layer("Gemm", [a, m], {}, name="g")
    b.layer("InnerProduct", [g], {0: 4, 2: 4 * 15}, name="fc")
    graph = b.build()
    infer_shapes(graph)
    macs = graph_macs(graph)
    assert macs["g"] == 5 * 3 * 7 and macs["fc"] == 60
