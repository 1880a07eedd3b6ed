"""``ncnnc compile`` and ``ncnnc eval`` end to end, on a few shared images (the 500-image run is in bench/)."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import bin_bytes, save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.optimize import optimize
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.quantizer import quantize

PRE = ["mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR"]


@pytest.fixture(scope="module")
def calib_list(image_paths, tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text("".join(f"{p}\n" for p in image_paths[:4]))
    return path


@pytest.fixture(scope="module")
def compiled(squeezenet_dir, calib_list, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "sq"
    model = [str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin")]
    status = main(["compile", *model, "--int8", "--calib", str(calib_list), *PRE, "method=kl",
                   "--fp32-layers", "conv10", "-o", str(out)])
    assert status == 0
    return out


def test_compile_writes_an_int8_model_the_runtime_runs(compiled, squeezenet_dir, capsys):
    assert sorted(p.name for p in compiled.iterdir()) == ["model.bin", "model.param", "model.table"]
    graph = load(compiled / "model.param", compiled / "model.bin")
    terms = {layer.name: layer.p("int8_scale_term") for layer in graph.layers if layer.type == "Convolution"}
    assert terms["conv1"] == 2 and terms["fire2/squeeze1x1"] == 102 and terms["conv10"] == 0
    assert len(graph) == 48  # the optimizer fused ReLU and dropped Dropout first
    table = CalibrationTable.load(compiled / "model.table")
    assert "conv10" in table.commented and "conv10" not in table.input_scales  # fp32 layers are commented out
    ratio = (compiled / "model.bin").stat().st_size / (squeezenet_dir / "squeezenet_v1.1.bin").stat().st_size
    assert ratio < 0.37  # int8 everywhere but conv10 (fp16: 1 MB of the 1.8 MB)
    fp32 = load(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    optimize(fp32)
    assert bin_bytes(quantize(fp32, table).graph) == (compiled / "model.bin").read_bytes()  # the table reproduces it
    net = RuntimeNet(compiled / "model.param", compiled / "model.bin")
    prob = net.run({"data": np.zeros((3, 227, 227), np.float32)}, ["prob"])["prob"]
    assert prob.size == 1000 and abs(float(prob.sum()) - 1) < 1e-3


def test_eval_reports_accuracy_agreement_and_layers(compiled, squeezenet_dir, calib_list, capsys):
    capsys.readouterr()
    args = ["eval", str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin"),
            str(compiled / "model.param"), str(compiled / "model.bin"), str(calib_list), *PRE,
            "--labels", str(squeezenet_dir / "synset_words.txt")]
    reports = {}
    for backend in ("ncnn", "numpy"):
        assert main([*args, "--backend", backend]) == 0
        reports[backend] = capsys.readouterr().out
    for text in reports.values():
        assert "4 images" in text and "top-1 agreement fp32 vs int8" in text
        assert "fp32 " in text and "int8 " in text and "fire2/squeeze1x1" not in text.split("worst")[0]
        assert "of 25):" in text  # 25 quantized layers compared (conv10 stayed fp32)
    accuracy = [[line for line in t.splitlines() if line.strip().startswith(("fp32", "int8"))]
                for t in reports.values()]
    assert accuracy[0] == accuracy[1]  # the numpy int8 simulation predicts the runtime's answers


def _tiny_model(tmp_path):
    """A small random 3-channel conv net on 16x16 images, written as ncnn files."""
    rng = np.random.default_rng(7)
    b = GraphBuilder()
    x = b.input("data", (3, 16, 16))
    cin = 3
    for i, n in enumerate((8, 8, 8)):
        x = b.layer("Convolution", [x], {"num_output": n, "kernel_w": 3, "pad_left": 1, "bias_term": 1,
                                         "weight_data_size": n * cin * 9, "activation_type": 1},
                    {"weight": rng.normal(0, 0.3, n * cin * 9), "bias": rng.normal(0, 0.1, n)}, name=f"conv{i}")
        cin = n
    x = b.layer("Pooling", [x], {"pooling_type": 1, "global_pooling": 1}, name="pool")
    b.layer("InnerProduct", [x], {"num_output": 4, "bias_term": 1, "weight_data_size": 32},
            {"weight": rng.normal(0, 0.5, 32), "bias": rng.normal(0, 0.1, 4)}, name="fc")
    param, binf = tmp_path / "tiny.param", tmp_path / "tiny.bin"
    save(b.build(), param, binf)
    return param, binf


def test_auto_mixed_precision_keeps_sensitive_layers_fp32(tmp_path, calib_list, capsys):
    param, binf = _tiny_model(tmp_path)
    out = tmp_path / "out"
    status = main(["compile", str(param), str(binf), "--int8", "--calib", str(calib_list), "shape=[16,16,3]",
                   "mean=[104,117,123]", "norm=[0.02,0.02,0.02]", "--auto-mixed-precision", "--target-cos", "0.99999",
                   "-o", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    assert "mixed precision" in text and "most sensitive: worst-image output cosine" in text
    graph = load(out / "model.param", out / "model.bin")
    fp32 = [layer.name for layer in graph.layers if layer.type in ("Convolution", "InnerProduct")
            and layer.p("int8_scale_term") == 0]
    assert fp32 and all(f"fp32 {name}:" in text for name in fp32)


def test_compile_bad_input(squeezenet_dir, calib_list, tmp_path, capsys):
    ref = squeezenet_dir / "ncnn-reference"
    out = tmp_path / "out"
    cases = [
        ([str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin"), "--int8"],
         "--int8 needs calibration images"),
        ([str(ref / "squeezenet_v1.1-int8-kl.param"), str(ref / "squeezenet_v1.1-int8-kl.bin"), "--int8",
          "--calib", str(calib_list), *PRE], "layer conv1: this is already an int8 model"),
        ([str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin"), "--int8",
          "--calib", str(calib_list), "colour=[1,2]"], "unknown option colour="),
    ]
    for args, message in cases:
        assert main(["compile", *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ncnnc compile: error: ") and err.count("\n") == 1 and message in err, err
        assert not out.exists()


def test_compile_without_weights_names_the_problem(squeezenet_dir, images_dir, tmp_path, capsys):
    """A .param given without its .bin: one line saying the weights are missing, nothing written."""
    from ncnnc.core.cli import main

    out = tmp_path / "out"
    rc = main(["compile", str(squeezenet_dir / "squeezenet_v1.1.param"), "--int8", "--calib", str(images_dir),
               "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "squeezenet_v1.1.param: layer conv1 has no weight 'weight'" in err
    assert not out.exists() or not any(out.iterdir())
