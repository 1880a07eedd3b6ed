"""Replace layers by cheaper equivalents, as ncnnoptimize does.

- ``replace_reduction_with_global_pooling``: a mean Reduction over both spatial axes of a 3-D blob
  (one Reduction over h and w, or two in a row) becomes a global average Pooling.  ncnnoptimize
  matches the old axis numbering (with batch, ``fixbug0=0``) that today's runtime refuses to load;
  here the shapes decide.
- ``replace_prelu_with_leaky_relu``: a PReLU with one slope is a leaky ReLU.
- ``replace_convolution_with_innerproduct_after_global_pooling`` / ``..._after_innerproduct``: a
  1x1 unpadded Convolution reading a 1-D blob is an InnerProduct with the same weights.
"""

from __future__ import annotations

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.passes import LEVEL_EXACT, LEVEL_FOLD, Pass
from ncnnc.core.patterns import Match, Op, Pattern, PatternPass, chain
from ncnnc.plugins.passes.common import shape, single_output

REDUCTION_MEAN = 3


def _mean_reduction(r: Layer) -> bool:
    return (len(r.inputs) == 1 and single_output(r) and r.p("operation") == REDUCTION_MEAN
            and not r.p("reduce_all") and r.p("coeff") == 1.0 and not r.p("keepdims"))


def _axes(r: Layer, ndim: int) -> set[int]:
    return {a + ndim if a < 0 else a for a in r.p("axes")}


def _spatial_mean(graph: Graph, m: Match) -> bool:
    first = m.get("r1", m["r2"])
    src = shape(graph, first.inputs[0])
    if src is None or len(src) != 3:
        return False
    if "r1" not in m:
        return _axes(first, 3) == {1, 2}
    mid = shape(graph, first.outputs[0])
    return _axes(first, 3) in ({1}, {2}) and mid is not None and len(mid) == 2 and _axes(m["r2"], 2) == {1}


def _to_global_pooling(graph: Graph, m: Match) -> str:
    last, first = m["r2"], m.get("r1", m["r2"])
    pooling = Layer("Pooling", last.name, list(first.inputs), list(last.outputs), {0: 1, 4: 1})
    graph.replace_layer(last, pooling)
    if first is not last:
        graph.remove_layer(first)
    gone = f"{first.name} + {last.name}" if first is not last else last.name
    return f"Reduction {gone} -> global average Pooling {pooling.name}"


replace_reduction_with_global_pooling = PatternPass(
    "replace_reduction_with_global_pooling",
    [chain(r1=Op("Reduction", where=_mean_reduction), r2=Op("Reduction", where=_mean_reduction)),
     Pattern(r2=Op("Reduction", where=_mean_reduction))],
    _to_global_pooling, "replace a spatial mean Reduction by global average pooling",
    where=_spatial_mean, level=LEVEL_FOLD, order=240, needs_shapes=True)


def _prelu_to_relu(graph: Graph, m: Match) -> str:
    prelu = m["x"]
    slope = float(prelu.weight("slope").reshape(-1)[0])
    graph.replace_layer(prelu, Layer("ReLU", prelu.name, list(prelu.inputs), list(prelu.outputs), {0: slope}))
    return f"PReLU {prelu.name} -> ReLU (slope {slope:g})"


replace_prelu_with_leaky_relu = PatternPass(
    "replace_prelu_with_leaky_relu", Pattern(x=Op("PReLU", where=lambda p: p.p("num_slope") == 1)),
    _prelu_to_relu, "replace a PReLU with one slope by a leaky ReLU", level=LEVEL_EXACT, order=250)


def _pointwise(conv: Layer) -> bool:
    pads = (conv.p("pad_left"), conv.p("pad_right"), conv.p("pad_top"), conv.p("pad_bottom"))
    return (len(conv.inputs) == 1 and single_output(conv) and conv.p("kernel_w") == 1 and conv.p("kernel_h") == 1
            and pads == (0, 0, 0, 0) and not conv.p("dynamic_weight") and conv.p("int8_scale_term") <= 100)


def _to_innerproduct(graph: Graph, m: Match) -> str:
    conv = m["conv"]
    n = conv.p("num_output")
    params: dict = {0: n, 1: conv.p("bias_term"), 2: conv.p("weight_data_size")}
    for pid in (8, 9, 10):
        if pid in conv.params:
            params[pid] = conv.params[pid]
    ip = Layer("InnerProduct", conv.name, list(conv.inputs), list(conv.outputs), params)
    for name, w in conv.weights.items():
        data = w.data.reshape(n, -1) if name == "weight" else w.data
        ip.weights[name] = Weight(data, w.storage, w.codebook, w.indices, w.tag)
    graph.replace_layer(conv, ip)
    return f"Convolution {conv.name} -> InnerProduct"


replace_convolution_with_innerproduct_after_global_pooling = PatternPass(
    "replace_convolution_with_innerproduct_after_global_pooling",
    Pattern(src=Op("Pooling", where=lambda p: bool(p.p("global_pooling")), shared=True),
            conv=Op("Convolution", inputs=("src",), where=_pointwise)),
    _to_innerproduct, "replace a 1x1 Convolution after global pooling by an InnerProduct",
    level=LEVEL_EXACT, order=500)


def _reads_1d(graph: Graph, m: Match) -> bool:
    src = shape(graph, m["conv"].inputs[0])
    return src is not None and len(src) == 1


replace_convolution_with_innerproduct_after_innerproduct = PatternPass(
    "replace_convolution_with_innerproduct_after_innerproduct",
    Pattern(src=Op("InnerProduct", shared=True), conv=Op("Convolution", inputs=("src",), where=_pointwise)),
    _to_innerproduct, "replace a 1x1 Convolution after a 1-D InnerProduct by an InnerProduct",
    where=_reads_1d, level=LEVEL_EXACT, order=510, needs_shapes=True)


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """Layer replacements."""
    return [replace_reduction_with_global_pooling, replace_prelu_with_leaky_relu,
            replace_convolution_with_innerproduct_after_global_pooling,
            replace_convolution_with_innerproduct_after_innerproduct]
