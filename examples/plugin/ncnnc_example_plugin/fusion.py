"""``fuse_convolution_scale``: fold a per-channel ``Scale`` layer into the ``Convolution`` before it.

``Scale`` computes ``x * s + b`` per channel; the convolution absorbs it: its weights of output
channel ``i`` times ``s[i]``, its bias ``bias * s + b``.  Written as a declarative pattern.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph
from ncnnc.core.passes import LEVEL_FOLD, Pass
from ncnnc.core.patterns import Match, Op, PatternPass, chain, fuse_into, set_weight


def _plain_convolution(layer) -> bool:
    """One output, no fused activation, float weights (a Scale after it folds exactly into them)."""
    return (len(layer.outputs) == 1 and layer.p("activation_type") == 0
            and layer.weights["weight"].storage != "int8")


def _fold(graph: Graph, m: Match) -> str:
    conv, scale = m["conv"], m["scale"]
    n = conv.p("num_output")
    s = scale.weight("scale").reshape(n)
    set_weight(conv, "weight", conv.weight("weight").reshape(n, -1) * s[:, None])
    bias = conv.weight("bias").reshape(n) * s if conv.p("bias_term") else np.zeros(n, np.float32)
    if scale.p("bias_term"):
        bias = bias + scale.weight("bias").reshape(n)
    set_weight(conv, "bias", bias)
    conv.params["bias_term"] = 1
    fuse_into(graph, conv, scale)
    return f"{conv.name} + {scale.name} -> {conv.name}"


fuse_convolution_scale = PatternPass(
    "fuse_convolution_scale",
    chain(conv=Op("Convolution", where=_plain_convolution), scale=Op("Scale")),
    _fold, "fold a per-channel Scale into the Convolution before it",
    where=lambda graph, m: m["scale"].p("scale_data_size") == m["conv"].p("num_output"),
    level=LEVEL_FOLD, order=120)


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """The ``fuse_convolution_scale`` pass."""
    return [fuse_convolution_scale]
