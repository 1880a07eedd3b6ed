"""Auto mixed precision's pruning: the layers bisection chose are tried back in int8, least sensitive first,
and stay int8 when the mixed model still reaches the target."""

from __future__ import annotations

from pathlib import Path

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate, input_specs, load_batch
from ncnnc.core.ir import Graph
from ncnnc.core.mixed_precision import choose_fp32_layers, prune_fp32_layers
from ncnnc.core.random_weights import fill_missing_weights


def test_prune_drops_layers_the_others_make_unnecessary() -> None:
    """The target needs ``a`` and one of ``b``/``c`` fp32: of the leading set a, b, c, d the pruning tries d,
    c, b, a in turn and keeps a and b, with their score; each try is one call of the criterion."""
    calls: list[list[str]] = []

    def score(keep: list[str]) -> float:
        calls.append(keep)
        return 1.0 if "a" in keep and ("b" in keep or "c" in keep) else 0.5

    kept, best = prune_fp32_layers(["a", "b", "c", "d"], score, 0.9, 1.0)
    assert kept == ["a", "b"] and best == 1.0
    assert calls == [["a", "b", "c"], ["a", "b"], ["a"], ["b"]]
    assert prune_fp32_layers(["a", "b"], lambda keep: 0.0, 0.9, 0.95) == (["a", "b"], 0.95)


def chain_model() -> Graph:
    """Five 3x3 convolutions with ReLU in a row and a classifier head."""
    b = GraphBuilder()
    x = b.input("data", (3, 16, 16))
    channels = 3
    for i in range(5):
        x = b.layer("Convolution", [x], {0: 8, 1: 3, 4: 1, 5: 1, 6: 72 * channels, 9: 1},
                    name=f"conv{i}")
        channels = 8
    x = b.layer("Pooling", [x], {0: 1, 4: 1})
    b.layer("InnerProduct", [x], {0: 10, 1: 1, 2: 80}, name="head")
    graph = b.build()
    fill_missing_weights(graph, seed=5)
    return graph


def test_choose_prunes_within_the_target(image_paths: list[Path]) -> None:
    """With a target between the all-int8 and the fp32 output, the pruned choice is a subset of the
    bisection's (here one layer fewer: conv1, the less sensitive of the two chosen convolutions, is not needed
    once conv3 is fp32) and still reaches the target."""
    graph = chain_model()
    images = image_paths[:4]
    table = calibrate(graph, lists=[images], shape=[[16, 16, 3]], method="minmax").table
    inputs = load_batch(input_specs(graph, [images], shape=[[16, 16, 3]]), range(4))
    plain = choose_fp32_layers(graph, table, inputs, target_cos=0.0, prune=False)
    target = 1 - (1 - plain.int8_cosine) / 5
    full = choose_fp32_layers(graph, table, inputs, target_cos=target, prune=False)
    pruned = choose_fp32_layers(graph, table, inputs, target_cos=target)
    assert full.fp32_layers and pruned.final_cosine >= target
    assert set(pruned.fp32_layers) < set(full.fp32_layers)
    assert {"conv1", "conv3"} <= set(full.fp32_layers) and "conv1" not in pruned.fp32_layers
    assert pruned.sensitivity == full.sensitivity
