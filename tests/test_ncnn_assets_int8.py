"""Calibration and quantization of the non-classifier asset models (random weights from the schemas, the
shared images): PP-OCRv5 det (1x1 convolutions on the 1-D blobs of global poolings), a two-input Faster
R-CNN (an ``im_info`` tensor beside the image), and auto mixed precision on a detector whose output
rows depend on the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ncnnc
from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate
from ncnnc.core.ir import Graph
from ncnnc.core.mixed_precision import compared_blobs
from ncnnc.core.random_weights import fill_missing_weights
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.quantizer import ONE_D_REASON, quantize

ASSETS = Path(__file__).parent / "data" / "ncnn_assets"


def random_model(name: str, folder: Path) -> tuple[Path, Path]:
    """An asset model written with random weights."""
    graph = load(ASSETS / f"{name}.param")
    fill_missing_weights(graph, seed=2)
    param, binf = folder / f"{name}.param", folder / f"{name}.bin"
    save(graph, param, binf)
    return param, binf


@pytest.mark.parametrize("quality", ["default", "high"])
def test_ppocr_det_compiles_to_int8(tmp_path: Path, image_paths: list[Path], quality: str) -> None:
    """compile --int8 accepts PP-OCRv5 det (its input check follows ncnn's 1-D blob semantics); the 1x1
    convolutions on 1-D blobs stay fp32; the runtime's int8 output equals the numpy int8 simulation.  With
    ``--quality high`` the refine walk leaves those convolutions fp32 too (it tried to refine them: a traceback)."""
    param, binf = random_model("PP_OCRv5_mobile_det.ncnn", tmp_path)
    result = ncnnc.compile([param, binf], calib=image_paths[:4], mean=[123.675, 116.28, 103.53],
                           norm=[0.0171, 0.0175, 0.0174], shape=[64, 64, 3], pixel="RGB", out_dir=tmp_path / "out",
                           quality=quality, refine_images=4)
    kept = {name for name, why in result.quantize_report.kept_fp32.items() if why == ONE_D_REASON}
    assert len(kept) == 10 and len(result.quantize_report.quantized) > 30
    int8 = load(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin")
    x = np.random.default_rng(0).uniform(-2, 2, (3, 64, 64)).astype(np.float32)
    theirs = RuntimeNet(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin").run({"in0": x}, ["out0"])
    ours = Interpreter(int8).run({"in0": x[None]})["out0"][0]
    # int8 requantization ties may round differently between the runtime and the simulation: 5e-3
    assert np.abs(ours - theirs["out0"]).max() <= 5e-3 * max(1.0, float(np.abs(theirs["out0"]).max()))


def written(b: GraphBuilder, folder: Path, name: str, seed: int) -> tuple[Path, Path]:
    """The builder's graph, the weights it left out drawn at random, written as ``name.param`` / ``.bin``."""
    graph = b.build()
    fill_missing_weights(graph, seed=seed)
    param, binf = folder / f"{name}.param", folder / f"{name}.bin"
    save(graph, param, binf)
    return param, binf


def tiny_rcnn(folder: Path) -> tuple[Path, Path]:
    """A small Faster R-CNN (two inputs: image and ``im_info``; Proposal, ROIPooling, InnerProduct head)
    written with random weights: the structure of ZF_faster_rcnn_final.param at a fraction of its weights."""
    b = GraphBuilder()
    data, info = b.input("data", (3, 64, 64)), b.input("im_info", (3,))
    x = b.layer("Convolution", [data], {0: 16, 1: 3, 3: 2, 4: 1, 5: 1, 6: 432, 9: 1})
    x = b.layer("Convolution", [x], {0: 16, 1: 3, 3: 2, 4: 1, 5: 1, 6: 2304, 9: 1})
    feat, to_cls, to_box = b.layer("Split", [x], outputs=3)
    cls = b.layer("Convolution", [to_cls], {0: 18, 1: 1, 5: 1, 6: 288})
    cls = b.layer("Reshape", [cls], {0: 0, 1: -1, 2: 2})
    cls = b.layer("Softmax", [cls], {0: 0})
    cls = b.layer("Reshape", [cls], {0: 0, 1: -1, 2: 18})
    box = b.layer("Convolution", [to_box], {0: 36, 1: 1, 5: 1, 6: 576})
    rois = b.layer("Proposal", [cls, box, info], {0: 4, 1: 4, 2: 300, 3: 10, 4: 0.7, 5: 2})
    pooled = b.layer("ROIPooling", [feat, rois], {0: 4, 1: 4, 2: 0.25})
    fc = b.layer("InnerProduct", [pooled], {0: 32, 1: 1, 2: 32 * 16 * 4 * 4, 9: 1})
    b.layer("InnerProduct", [fc], {0: 5, 1: 1, 2: 32 * 5})
    return written(b, folder, "rcnn", seed=3)


def im_info_files(folder: Path, count: int) -> list[Path]:
    """``count`` ``.npy`` files holding the R-CNN's ``im_info`` (h, w, scale) of a 64x64 image."""
    paths = [folder / f"info{i}.npy" for i in range(count)]
    for path in paths:
        np.save(path, np.array([64, 64, 1.0], np.float32))
    return paths


def assert_rcnn_runs_as_simulated(param: Path, binf: Path, int8: Graph, seed: int) -> None:
    """The runtime's outputs of the int8 R-CNN on a random image equal the numpy int8 simulation's (int8
    requantization ties may round differently: 5e-3 of the output's range)."""
    x = {"data": np.random.default_rng(seed).uniform(-100, 100, (3, 64, 64)).astype(np.float32),
         "im_info": np.array([64, 64, 1.0], np.float32)}
    theirs = RuntimeNet(param, binf).run(x, int8.outputs)
    ours = Interpreter(int8).run({k: v[None] for k, v in x.items()})
    for name in int8.outputs:
        assert np.abs(ours[name][0] - theirs[name]).max() <= 5e-3 * max(1.0, float(np.abs(theirs[name]).max()))


def test_two_input_rcnn_calibrates_and_quantizes(tmp_path: Path, image_paths: list[Path]) -> None:
    """A Faster R-CNN: images for ``data`` and ``.npy`` tensors for ``im_info``, one list per input with
    per-input shapes (ncnn2table's form); the convolutions and the InnerProducts after ROIPooling get
    scales, Proposal and ROIPooling stay fp32; the int8 model runs in the runtime like the simulation."""
    param, binf = tiny_rcnn(tmp_path)
    infos = im_info_files(tmp_path, 3)
    graph = load(param, binf)
    table = calibrate(graph, lists=[image_paths[:3], infos], mean=[[104, 117, 123], []], norm=[[1, 1, 1], []],
                      shape=[[64, 64, 3], [3]], pixel=["BGR", "BGR"], method="minmax").table
    types = {layer.name: layer.type for layer in graph.layers}
    assert sorted(types[n] for n in table.input_scales) == ["Convolution"] * 4 + ["InnerProduct"] * 2
    int8 = quantize(graph, table).graph
    save(int8, tmp_path / "q.param", tmp_path / "q.bin")
    assert_rcnn_runs_as_simulated(tmp_path / "q.param", tmp_path / "q.bin", int8, seed=1)


def tiny_ssd(folder: Path) -> tuple[Path, Path]:
    """A small SSD: a backbone, location and confidence heads, PriorBox and DetectionOutput."""
    b = GraphBuilder()
    data = b.input("data", (3, 48, 48))
    img, to_feat = b.layer("Split", [data], outputs=2)
    x = b.layer("Convolution", [to_feat], {0: 8, 1: 3, 3: 2, 4: 1, 5: 1, 6: 216, 9: 1})
    x = b.layer("Convolution", [x], {0: 16, 1: 3, 3: 2, 4: 1, 5: 1, 6: 1152, 9: 1})
    to_loc, to_conf, to_prior = b.layer("Split", [x], outputs=3)
    loc = b.layer("Flatten", [b.layer("Permute", [b.layer("Convolution", [to_loc], {0: 12, 1: 1, 5: 1, 6: 192})],
                                      {0: 3})])
    conf = b.layer("Convolution", [to_conf], {0: 9, 1: 1, 5: 1, 6: 144})
    conf = b.layer("Reshape", [b.layer("Permute", [conf], {0: 3})], {0: 3, 1: -1})
    conf = b.layer("Flatten", [b.layer("Softmax", [conf], {0: 1, 1: 1})])
    prior = b.layer("PriorBox", [to_prior, img], {0: [12.0], 1: [24.0], 2: [2.0], 7: 0, 9: -233, 10: -233,
                                                   13: 0.5})
    b.layer("DetectionOutput", [loc, conf, prior], {0: 3, 1: 0.45, 3: 20, 4: 0.3})
    return written(b, folder, "ssd", seed=4)


def test_auto_mixed_precision_on_a_detector(tmp_path: Path, image_paths: list[Path]) -> None:
    """A detector ending in DetectionOutput: agreement is measured on the detection layer's inputs (its
    output rows depend on the data), and auto mixed precision reaches its target there."""
    assert compared_blobs(load(ASSETS / "mobilenet_ssd_voc_ncnn.param")) == \
        ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]
    param, binf = tiny_ssd(tmp_path)
    result = ncnnc.compile([param, binf], calib=image_paths[:4], mean=[127.5] * 3, norm=[0.007843] * 3,
                           shape=[48, 48, 3], auto_mixed_precision=True, target_cos=0.9999, amp_images=4,
                           out_dir=tmp_path / "out")
    amp = result.mixed_precision
    assert amp is not None and amp.final_cosine >= 0.9999 and amp.final_cosine >= amp.int8_cosine
    RuntimeNet(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin")  # the runtime loads it


@pytest.mark.parametrize("model,blobs", [
    ("pelee", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "sigmoid"]),
    ("yolov4-tiny-opt", ["29_208", "36_259"]),
    ("rfcn_end2end", ["cls_prob", "bbox_pred"]),
])
def test_compared_blobs(model: str, blobs: list[str]) -> None:
    """Outputs of detection layers are replaced by their inputs; other outputs stay."""
    got = compared_blobs(load(ASSETS / f"{model}.param"))
    assert got == blobs


def test_amp_measures_on_the_hardest_images(tmp_path: Path, image_paths: list[Path]) -> None:
    """hardest_images keeps the images whose all-int8 outputs drift furthest from fp32."""
    from ncnnc.backends.numpy import Interpreter as Interp
    from ncnnc.core.calibration import input_specs, load_batch
    from ncnnc.core.mixed_precision import hardest_images, output_cosine

    param, binf = tiny_ssd(tmp_path)
    graph = load(param, binf)
    table = calibrate(graph, lists=[image_paths[:6]], shape=[[48, 48, 3]], method="minmax").table
    specs = input_specs(graph, [image_paths[:6]], shape=[[48, 48, 3]])
    inputs = load_batch(specs, list(range(6)))
    blobs = compared_blobs(graph)
    cos = output_cosine(Interp(graph).run(inputs, blobs), Interp(quantize(graph, table).graph).run(inputs, blobs))
    picked = hardest_images(graph, table, inputs, 2)["data"]
    expected = inputs["data"][np.sort(np.argsort(cos)[:2])]
    np.testing.assert_array_equal(picked, expected)


def test_compile_takes_one_list_and_shape_per_input(tmp_path: Path, image_paths: list[Path]) -> None:
    """``ncnnc compile`` on the two-input R-CNN: ``--calib`` gives one list per input (images, ``.npy``
    ``im_info`` tensors), ``mean=``/``shape=``/``pixel=`` one group per input; auto mixed precision measures
    on both inputs; the runtime runs the result like the simulation."""
    from ncnnc.core.cli import main

    param, binf = tiny_rcnn(tmp_path)
    infos = im_info_files(tmp_path, 4)
    images, tensors = tmp_path / "images.txt", tmp_path / "im_info.txt"
    images.write_text("".join(f"{p}\n" for p in image_paths[:4]))
    tensors.write_text("".join(f"{p}\n" for p in infos))
    out = tmp_path / "out"
    status = main(["compile", str(param), str(binf), "--int8", "--calib", f"{images},{tensors}",
                   "mean=[104,117,123],[]", "norm=[1,1,1],[]", "shape=[64,64,3],[3]", "pixel=BGR,BGR",
                   "method=minmax", "--auto-mixed-precision", "--amp-images", "2", "-o", str(out)])
    assert status == 0
    int8 = load(out / "model.param", out / "model.bin")
    assert sum(layer.type == "Convolution" and layer.p("int8_scale_term") > 0 for layer in int8.layers) == 4
    assert_rcnn_runs_as_simulated(out / "model.param", out / "model.bin", int8, seed=2)
    assert main(["compile", str(param), str(binf), "--int8", "--calib", str(images), "shape=[64,64,3]",
                 "-o", str(tmp_path / "bad")]) == 2  # one list for two inputs: one clear error
    assert not (tmp_path / "bad").exists()


def tiny_crnn(folder: Path) -> tuple[Path, Path]:
    """A text recognizer's shape: convolutions, a column pooling to a sequence, an LSTM and a per-step
    classifier (random weights)."""
    b = GraphBuilder()
    x = b.input("data", (3, 32, 32))
    x = b.layer("Convolution", [x], {0: 16, 1: 3, 3: 2, 4: 1, 5: 1, 6: 432, 9: 1})
    x = b.layer("Convolution", [x], {0: 16, 1: 3, 4: 1, 5: 1, 6: 2304, 9: 1})
    x = b.layer("Pooling", [x], {0: 1, 1: 1, 11: 16, 2: 1, 12: 16})
    x = b.layer("Reshape", [x], {0: 16, 1: 16})
    x = b.layer("LSTM", [x], {0: 12, 1: 12 * 4 * 16, 2: 0})
    b.layer("InnerProduct", [x], {0: 10, 1: 1, 2: 10 * 12 * 16})
    return written(b, folder, "crnn", seed=5)


def test_auto_mixed_precision_with_a_dynamic_int8_lstm(tmp_path: Path, image_paths: list[Path]) -> None:
    """Mixed precision simulates the int8 model in numpy; an LSTM that ncnn2int8 quantizes weight-only
    (``8=2``) used to stop it ("numpy backend has no int8 implementation of layer type LSTM")."""
    param, binf = tiny_crnn(tmp_path)
    result = ncnnc.compile([param, binf], calib=image_paths[:4], mean=[127.5] * 3, norm=[0.007843] * 3,
                           shape=[32, 32, 3], auto_mixed_precision=True, amp_images=4, out_dir=tmp_path / "out")
    assert result.mixed_precision is not None
    int8 = load(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin")
    lstm = next(layer for layer in int8.layers if layer.type == "LSTM")
    assert lstm.p("int8_scale_term") == 2
    x = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32)).astype(np.float32)
    out = int8.outputs[0]
    theirs = RuntimeNet(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin").run({"data": x}, [out])
    ours = Interpreter(int8).run({"data": x[None]})[out][0]
    np.testing.assert_allclose(ours, theirs[out].reshape(ours.shape), rtol=0,
                               atol=1e-5 * max(1.0, float(np.abs(theirs[out]).max())))


def test_ppocr_rec_int8_matches_simulation(tmp_path: Path, image_paths: list[Path]) -> None:
    """PP-OCRv5 rec: int8 convolutions, and MultiHeadAttention and Gemm layers that ncnn2int8 makes
    weight-only int8 (their activations quantized on the fly); the numpy simulation of all of them gives the
    runtime's output (it had no int8 MultiHeadAttention or Gemm)."""
    param, binf = random_model("PP_OCRv5_mobile_rec.ncnn", tmp_path)
    result = ncnnc.compile([param, binf], calib=image_paths[:4], mean=[127.5] * 3, norm=[1 / 128] * 3,
                           shape=[160, 48, 3], out_dir=tmp_path / "out")
    dynamic = {layer.type for layer in load(param).layers if layer.name in result.quantize_report.dynamic}
    assert dynamic == {"MultiHeadAttention", "Gemm"}
    int8 = load(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 48, 160)).astype(np.float32)
    out = int8.outputs[0]
    theirs = RuntimeNet(tmp_path / "out" / "model.param", tmp_path / "out" / "model.bin").run({"in0": x}, [out])[out]
    ours = Interpreter(int8).run({"in0": x[None]})[out][0].reshape(theirs.shape)
    assert np.abs(ours - theirs).max() <= 1e-4 * float(np.abs(theirs).max())
