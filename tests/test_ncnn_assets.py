"""The 36 public ncnn models of nihui/ncnn-assets (``tests/data/ncnn_assets``): each loads, infers every
blob's shape equal to the real ncnn runtime's, and runs in the numpy backend within 1e-3 of the runtime
on random inputs, with random weights generated from the layer schemas (the ``.bin`` files are not
vendored)."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.random_weights import fill_missing_weights
from ncnnc.core.registry import registry
from ncnnc.core.shapes import DATA_DEPENDENT, infer_shapes
from ncnnc.frontends.ncnn import load

ASSETS = Path(__file__).parent / "data" / "ncnn_assets"

# model -> input shapes in numpy order (c, h, w), smallest sizes the model's fixed reshapes allow
IMAGE = {"data": (3, 160, 160)}
MODELS: dict[str, dict[str, tuple[int, ...]]] = {
    "PP_OCRv5_mobile_det.ncnn": {"in0": (3, 96, 96)},
    "PP_OCRv5_mobile_rec.ncnn": {"in0": (3, 48, 160)},
    "ZF_faster_rcnn_final": {"data": (3, 128, 128), "im_info": (3,)},
    "mnet.25-opt": {"data": (3, 128, 128)},
    "mobilenet_ssd_voc_ncnn": {"data": (3, 300, 300)},
    "mobilenet_yolo": {"data": (3, 160, 160)},
    "mobilenetv2_ssdlite_voc": {"data": (3, 300, 300)},
    "mobilenetv2_yolov3": {"data": (3, 160, 160)},
    "mobilenetv3_ssdlite_voc": {"input": (3, 300, 300)},
    "nanodet_m": {"input.1": (3, 160, 160)},
    "pelee": {"data": (3, 304, 304)},
    "pose": {"data": (3, 128, 96)},
    "rfcn_end2end": {"data": (3, 128, 128), "im_info": (3,)},
    "scrfd_500m-opt2": {"input.1": (3, 160, 160)},
    "shufflenet_v2_x0.5": {"data": (3, 224, 224)},
    "squeezenet_ssd_voc": {"data": (3, 300, 300)},
    "squeezenet_v1.1": {"data": (3, 227, 227)},
    "yolact": {"input.1": (3, 550, 550)},
    "yolo11n.ncnn": {"in0": (3, 160, 160)},
    "yolo11n_cls.ncnn": {"in0": (3, 224, 224)},
    "yolo11n_obb.ncnn": {"in0": (3, 160, 160)},
    "yolo11n_pose.ncnn": {"in0": (3, 160, 160)},
    "yolo11n_seg.ncnn": {"in0": (3, 160, 160)},
    "yolov4-opt": {"data": (3, 160, 160)},
    "yolov4-tiny-opt": {"data": (3, 416, 416)},
    "yolov5s.ncnn": {"in0": (3, 160, 160)},
    "yolov5s": {"images": (3, 160, 160)},
    "yolov5s_6.0": {"images": (3, 160, 160)},
    "yolov6n": {"images": (3, 160, 160)},
    "yolov7-tiny": {"images": (3, 160, 160)},
    "yolov8n.ncnn": {"in0": (3, 160, 160)},
    "yolov8n_cls.ncnn": {"in0": (3, 160, 160)},
    "yolov8n_obb.ncnn": {"in0": (3, 160, 160)},
    "yolov8n_pose.ncnn": {"in0": (3, 160, 160)},
    "yolov8n_seg.ncnn": {"in0": (3, 160, 160)},
    "yolov8s_worldv2.ncnn": {"in0": (3, 640, 640)},
}


PLUGIN_MODULE = Path(__file__).parent.parent / "examples" / "plugin" / "ncnnc_example_plugin" / "yolov5_focus.py"
CUSTOM = {"yolov5s": PLUGIN_MODULE}
"""Models with a custom layer -> the example plugin module that implements it."""


@contextlib.contextmanager
def plugin(path: Path):
    """The plugin module at ``path`` registered for the block (as its entry point would register it)."""
    spec = importlib.util.spec_from_file_location(f"ncnnc_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registry().register(module, name=spec.name)
    try:
        yield module
    finally:
        registry().unregister(module)


def model_inputs(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs; ``im_info`` is the image's (h, w, scale) as the R-CNN examples feed it."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if name == "im_info":
            _, h, w = shapes["data"]
            out[name] = np.array([h, w, 1.0], np.float32)
        else:
            out[name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return out


def same_shape(layer_type: str, ours: tuple[int, ...], theirs: tuple[int, ...]) -> bool:
    """Equal shapes; for layers whose output count depends on the data (detections, proposals),
    ours is the upper bound of the leading axis and an empty result is a 0-row result."""
    if layer_type not in DATA_DEPENDENT:
        return ours == theirs
    if theirs in ((), (0,)):
        return True
    return len(ours) == len(theirs) and ours[1:] == theirs[1:] and theirs[0] <= ours[0]


def assert_close(name: str, ours: np.ndarray, theirs: np.ndarray, tol: float = 1e-3) -> None:
    """Same shape, NaN at the same places, elsewhere max abs diff within ``tol`` of the output's scale
    (at least 1)."""
    if theirs.size == 0:
        assert ours.size == 0, f"{name}: numpy {ours.shape}, the runtime has no rows"
        return
    assert ours.shape == theirs.shape, f"{name}: numpy {ours.shape} vs runtime {theirs.shape}"
    nan = np.isnan(theirs)  # ncnn's own NaNs (a PriorBox step written as the integer -233) must be ours too
    assert np.array_equal(np.isnan(ours), nan), f"{name}: NaN at different places"
    ours, theirs = ours[~nan], theirs[~nan]
    scale = max(float(np.abs(theirs).max(initial=0)), 1.0)
    diff = float(np.abs(ours - theirs).max(initial=0))
    assert diff <= tol * scale, f"{name}: max diff {diff} (scale {scale})"


NOT_YET: set[str] = set()
"""Models that do not match the runtime yet (strict: one that starts to match fails until removed)."""


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.xfail(strict=True)) if m in NOT_YET else m
                                   for m in sorted(MODELS)])
def test_asset_model_matches_runtime(model: str, tmp_path: Path) -> None:
    """Load, infer shapes, write with random weights, compare shapes and outputs with the runtime."""
    with plugin(CUSTOM[model]) if model in CUSTOM else contextlib.nullcontext():
        check_model(model, tmp_path)


def check_model(model: str, tmp_path: Path) -> None:
    """The body of :func:`test_asset_model_matches_runtime`."""
    graph = load(ASSETS / f"{model}.param")
    fill_missing_weights(graph, seed=1)
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    save(graph, param, binf)
    shapes = MODELS[model]
    inferred = infer_shapes(graph, shapes)
    inputs = model_inputs(shapes)
    net = RuntimeNet(param, binf)
    blobs = [b for b in graph.blobs if b not in shapes]
    theirs = net.run(inputs, blobs)
    kinds = {}
    for layer in graph.layers:  # a Split of a data-dependent blob is data-dependent too
        inherited = layer.type == "Split" and kinds.get(layer.inputs[0]) in DATA_DEPENDENT
        kinds.update((b, kinds[layer.inputs[0]] if inherited else layer.type) for b in layer.outputs)
    # YoloDetectionOutput works in place: with nothing detected, ncnn hands back its softmaxed first input
    nothing = {b: inferred[layer.inputs[0]] for layer in graph.layers if layer.type == "YoloDetectionOutput"
               for b in layer.outputs}
    wrong = [f"{b} ({kinds[b]}): ncnnc {inferred[b]} runtime {theirs[b].shape}" for b in blobs
             if not same_shape(kinds[b], inferred[b], theirs[b].shape) and nothing.get(b) != theirs[b].shape]
    assert not wrong, f"{len(wrong)} blob shapes differ, first: " + "; ".join(wrong[:3])
    ours = Interpreter(graph).run({k: v[None] for k, v in inputs.items()})
    for name in graph.outputs:
        assert_close(name, ours[name][0], theirs[name])
