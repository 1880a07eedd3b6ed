"""Auto mixed precision keeps the small layers that read a 1-D vector (a global pooling's output) fp32 without
measuring them: their calibration sees one value per channel per image, so the scale does not generalise."""

from __future__ import annotations

from pathlib import Path

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate, input_specs, load_batch
from ncnnc.core.ir import Graph
from ncnnc.core.mixed_precision import VECTOR_REASON, choose_fp32_layers, hardest_images, vector_input_layers
from ncnnc.core.random_weights import fill_missing_weights


def se_model() -> Graph:
    """A convolution, a squeeze-excitation block (global pooling, two InnerProducts, a gate: 64 of 5776
    weights), a larger convolution and a classifier head on the pooled vector (640 weights, 11 %)."""
    b = GraphBuilder()
    x = b.layer("Convolution", [b.input("data", (3, 16, 16))], {0: 8, 1: 3, 4: 1, 5: 1, 6: 216, 9: 1}, name="conv")
    feat, to_se = b.layer("Split", [x], outputs=2)
    s = b.layer("Pooling", [to_se], {0: 1, 4: 1})
    s = b.layer("InnerProduct", [s], {0: 4, 1: 1, 2: 32, 9: 1}, name="se_fc1")
    s = b.layer("InnerProduct", [s], {0: 8, 1: 1, 2: 32}, name="se_fc2")
    s = b.layer("Reshape", [b.layer("Sigmoid", [s])], {0: 1, 1: 1, 2: 8})
    x = b.layer("BinaryOp", [feat, s], {0: 2})
    x = b.layer("Convolution", [x], {0: 64, 1: 3, 4: 1, 5: 1, 6: 4608, 9: 1}, name="conv2")
    x = b.layer("Pooling", [x], {0: 1, 4: 1})
    b.layer("InnerProduct", [x], {0: 10, 1: 1, 2: 640}, name="head")
    graph = b.build()
    fill_missing_weights(graph, seed=3)
    return graph


def test_amp_keeps_vector_input_layers_fp32(image_paths: list[Path]) -> None:
    """The two SE InnerProducts read vectors and are small: kept fp32 with the reason, not measured; the
    classifier head reads a vector but holds 11 % of the weights: measured, like the convolutions;
    ``keep_vectors=False`` measures them all."""
    graph = se_model()
    images = image_paths[:4]
    table = calibrate(graph, lists=[images], shape=[[16, 16, 3]], method="minmax").table
    inputs = load_batch(input_specs(graph, [images], shape=[[16, 16, 3]]), range(4))
    assert vector_input_layers(graph, table, inputs) == ["se_fc1", "se_fc2"]
    assert vector_input_layers(graph, table, inputs, max_share=1.0) == ["se_fc1", "se_fc2", "head"]
    report = choose_fp32_layers(graph, table, inputs, target_cos=0.0)
    assert report.fp32_layers == dict.fromkeys(["se_fc1", "se_fc2"], VECTOR_REASON)
    assert sorted(report.sensitivity) == ["conv", "conv2", "head"]
    measured = choose_fp32_layers(graph, table, inputs, target_cos=0.0, keep_vectors=False)
    assert not measured.fp32_layers and sorted(measured.sensitivity) == ["conv", "conv2", "head", "se_fc1", "se_fc2"]
    assert len(hardest_images(graph, table, inputs, 2)["data"]) == 2
