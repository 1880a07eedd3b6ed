"""One CLI contract (issue 13): every verb takes any frontend's files and the same preprocessing syntax,
says what it assumed, checks the user's settings before any work, and counts layers one way.

Runs on the bundled SqueezeNet example and on small models built here (an ONNX model with long,
exporter-style names), never on ../shared.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ncnnc
from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate
from ncnnc.core.cli import main
from ncnnc.core.preprocess import load_image, substract_mean_normalize
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "squeezenet"
MODEL = [str(EXAMPLE / "squeezenet_v1.1.param"), str(EXAMPLE / "squeezenet_v1.1.bin")]
IMAGES = sorted((EXAMPLE / "images").iterdir())
LONG = "/backbone/stage.0/block.0/conv/Conv_output_0"  # exporter-style names, longer than any fixed column


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """Conv 3x3 -> Relu -> GlobalAveragePool -> Flatten -> Gemm, input images 1x3x16x16, long names."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.1, f"{LONG}.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, f"{LONG}.bias")
    g = numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "/head/fc/Gemm.weight")
    nodes = [helper.make_node("Conv", ["images", w.name, b.name], [LONG], pads=[1, 1, 1, 1], name=f"{LONG}_node"),
             helper.make_node("Relu", [LONG], [f"{LONG}/Relu"], name=f"{LONG}/Relu_node"),
             helper.make_node("GlobalAveragePool", [f"{LONG}/Relu"], ["/pool/GlobalAveragePool_output_0"]),
             helper.make_node("Flatten", ["/pool/GlobalAveragePool_output_0"], ["/head/Flatten_output_0"]),
             helper.make_node("Gemm", ["/head/Flatten_output_0", g.name], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "long_names",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], [w, b, g])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path_factory.mktemp("onnx") / "long_names.onnx"
    onnx.save(model, path)
    return path


def preprocess(path: Path, size: int, mean=(104, 117, 123)) -> np.ndarray:
    x = load_image(path, pixel="BGR", shape=(size, size))
    return np.asarray(substract_mean_normalize(x, list(mean), None), np.float32)


def onnxruntime_logits(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x[None]})[0][0]


def top1(stdout: str) -> tuple[int, float]:
    m = re.search(r"^\s+1\.\s+(\d+)\s+(-?[\d.]+)", stdout, re.M)
    return int(m[1]), float(m[2])


def test_run_and_optimize_take_an_onnx_model(onnx_model, tmp_path, capsys):
    x = preprocess(IMAGES[0], 16)
    want = onnxruntime_logits(onnx_model, x)
    for backend in ("numpy", "ncnn"):
        assert main(["run", str(onnx_model), str(IMAGES[0]), "mean=[104,117,123]", "shape=[16,16]",
                     "--backend", backend, "--top", "1"]) == 0
        index, value = top1(capsys.readouterr().out)
        assert index == int(np.argmax(want)) and value == pytest.approx(float(want.max()), abs=1e-4)
    out = [str(tmp_path / "opt.param"), str(tmp_path / "opt.bin")]
    assert main(["optimize", str(onnx_model), *out]) == 0
    got = RuntimeNet(*out).run({"images": x}, ["logits"])["logits"]
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-4, atol=1e-5)


def test_table_quantize_and_eval_take_an_onnx_model(onnx_model, tmp_path, capsys):
    """ncnn2table's and ncnn2int8's verbs and eval take the ONNX file where an ncnn model goes, with the
    same results as on the ncnn model ncnnc converts it to."""
    converted = [str(tmp_path / "fp32.param"), str(tmp_path / "fp32.bin")]
    assert main(["convert", str(onnx_model), *converted]) == 0
    images = tmp_path / "images.txt"
    images.write_text("".join(f"{p}\n" for p in IMAGES[:6]))
    pre = ["mean=[104,117,123]", "shape=[16,16,3]", "pixel=BGR", "thread=1"]
    tables = {}
    for name, model in (("onnx", [str(onnx_model)]), ("ncnn", converted)):
        tables[name] = tmp_path / f"{name}.table"
        assert main(["table", *model, str(images), str(tables[name]), *pre]) == 0
        out = [str(tmp_path / f"{name}-int8.param"), str(tmp_path / f"{name}-int8.bin")]
        assert main(["quantize", *model, *out, str(tables[name])]) == 0
    assert tables["onnx"].read_bytes() == tables["ncnn"].read_bytes()
    for suffix in ("param", "bin"):
        assert (tmp_path / f"onnx-int8.{suffix}").read_bytes() == (tmp_path / f"ncnn-int8.{suffix}").read_bytes()
    int8 = RuntimeNet(str(tmp_path / "onnx-int8.param"), str(tmp_path / "onnx-int8.bin"))
    assert int8.run({"images": preprocess(IMAGES[0], 16)}, ["logits"])["logits"].size == 5
    capsys.readouterr()
    assert main(["eval", str(onnx_model), str(tmp_path / "onnx-int8.param"), str(tmp_path / "onnx-int8.bin"),
                 str(images), *pre[:3], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 6


def test_both_preprocessing_spellings_everywhere(onnx_model, tmp_path, capsys):
    runs = []
    for options in (["mean=[104,117,123]", "shape=[16,16]", "pixel=BGR"],
                    ["--mean", "104,117,123", "--shape", "16,16", "--pixel", "BGR"],
                    ["--mean", "104,117,123", "shape=[16,16]"]):
        assert main(["run", str(onnx_model), str(IMAGES[1]), *options, "--top", "1"]) == 0
        runs.append(top1(capsys.readouterr().out))
    assert runs[0] == runs[1] == runs[2]
    assert main(["run", str(onnx_model), str(IMAGES[1]), "--shape", "16,16", "shape=[16,16]"]) == 2
    assert "shape given twice" in capsys.readouterr().err
    assert main(["inspect", *MODEL, "shape=[227,227,3]", "--summary"]) == 0
    assert "MACs: 418,467,520 = 418.47 M" in capsys.readouterr().out  # ncnn's figure for 227x227
    out = tmp_path / "flags"
    assert main(["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--mean", "104,117,123",
                 "--shape", "227,227,3", "--pixel", "BGR", "method=minmax", "thread=1", "-o", str(out)]) == 0
    capsys.readouterr()


def test_calibrate_takes_both_spellings(tmp_path, capsys):
    four = tmp_path / "four.txt"
    four.write_text("".join(f"{p}\n" for p in IMAGES[:4]))
    base = ["calibrate", *MODEL, str(four)]
    assert main([*base, str(tmp_path / "a.table"), "mean=[104,117,123]", "shape=[227,227,3]", "--method", "minmax",
                 "--threads", "1"]) == 0
    assert main([*base, str(tmp_path / "b.table"), "--mean", "104,117,123", "--shape", "227,227,3", "--method",
                 "minmax", "--threads", "1"]) == 0
    assert (tmp_path / "a.table").read_bytes() == (tmp_path / "b.table").read_bytes()
    assert main([*base, str(tmp_path / "c.table"), "--mean", "104,117,123", "mean=[1,2,3]"]) == 2
    assert "mean given twice" in capsys.readouterr().err


def test_run_states_the_preprocessing_it_assumed(capsys):
    assert main(["run", *MODEL, str(IMAGES[0]), "--top", "1"]) == 0
    err = capsys.readouterr().err
    assert "preprocessing not given, using no mean, no norm, shape=[227,227] from the Input layer, pixel=BGR" in err


@pytest.mark.parametrize("argv, blamed", [
    (["eval", *MODEL, *MODEL, str(EXAMPLE / "images"), "--limit", "-3"],
     "argument --limit: expected at least 1, got -3"),
    (["eval", *MODEL, *MODEL, str(EXAMPLE / "images"), "--worst", "-1"],
     "argument --worst: expected at least 0, got -1"),
    (["run", *MODEL, str(IMAGES[0]), "--top", "0"], "argument --top: expected at least 1, got 0"),
    (["calibrate", *MODEL, str(EXAMPLE / "images"), "never", "--cache-mb", "-5"],
     "argument --cache-mb: expected at least 0, got -5"),
    (["calibrate", *MODEL, str(EXAMPLE / "images"), "never", "--shard-batches", "x"],
     "argument --shard-batches: expected a whole number, got 'x'"),
])
def test_counts_below_their_least_are_usage_errors(argv, blamed, capsys):
    """Counts below their least were Python slices (``--limit -3``: all images but 3) or silently ignored."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and blamed in err, err
    assert not Path("never").exists()


@pytest.mark.parametrize("argv, blamed", [
    (["run", *MODEL, str(IMAGES[0]), "mean=[127,127]"], "mean=[127,127] has 2 value(s), but pixel=BGR images have 3"),
    (["run", *MODEL, str(IMAGES[0]), "shape=[227,227,1]", "pixel=GRAY", "mean=[1]"],
     "shape=[227,227,1] gives layer conv1 1 input channel(s)"),
    (["inspect", *MODEL, "--shape", "320,320"], "shape=[320,320] gives layer conv1 1 input channel(s)"),
    (["compile", *MODEL, "--int8", "--calib", "nope.txt", "-o", "never"], "nope.txt: cannot read list"),
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "mean=[127,127]", "-o", "never"],
     "mean=[127,127] has 2 value(s)"),
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--shape", "320,320,1", "pixel=GRAY",
      "mean=[1]", "-o", "never"], "shape=[320,320,1] gives layer conv1 1 input channel(s)"),
    (["eval", *MODEL, *MODEL, str(EXAMPLE / "images"), "--mean", "104,117"], "mean=[104,117] has 2 value(s)"),
    # an empty shape (found by bench/fuzz.py: a traceback in compile, ignored by eval)
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "shape=[]", "-o", "never"],
     "shape=[] for input 'data': an image input needs [w,h] or [w,h,c]"),
    (["eval", *MODEL, *MODEL, str(EXAMPLE / "images"), "shape=[]"],
     "shape=[] for input 'data': an image input needs [w,h] or [w,h,c]"),
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--fp32-layers", "nosuch", "-o", "never"],
     "--fp32-layers names layer 'nosuch', which the model does not have"),
    # a size the model cannot take (eval said "the ncnn runtime could not extract blob 'prob'")
    (["eval", *MODEL, *MODEL, str(EXAMPLE / "images"), "shape=[8,8,3]"],
     "input shape data [3, 8, 8] does not fit the model: layer pool3: its 3x3 window (w x h) is larger than its "
     "padded input 1x1"),
    # settings of a step that does not run (they were ignored)
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--target-cos", "0.99", "-o", "never"],
     "--target-cos applies only with --auto-mixed-precision"),
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "-o", MODEL[0]],  # was found after the work
     f"{MODEL[0]}: exists and is not a directory"),
    (["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--refine-images", "50", "-o", "never"],
     "--refine-images applies only with a refine step (--quality high, --adaround, --bias-correction or --act-scale)"),
    (["compile", *MODEL, "--exact-input", "-o", "never"],
     "--exact-input applies only with --int8 (without it the fp32 model is compiled)"),
])
def test_settings_are_checked_before_work_and_blamed(argv, blamed, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and blamed in err, err
    assert "optimizing" not in err and "calibrating" not in err and not captured.out
    assert not any(p.name.lower().endswith(".jpeg") for p in map(Path, err.split()))  # no image is blamed
    assert not Path("never").exists()


@pytest.mark.parametrize("name, blamed", [("relu_conv1", "fused it into 'conv1': keep that one fp32"),
                                            ("drop9", "removed it (it had nothing to quantize)")])
def test_fp32_layers_the_optimizer_fused_away_are_blamed_before_calibration(name, blamed, capsys):
    argv = ["compile", *MODEL, "--int8", "--calib", str(EXAMPLE / "images"), "--fp32-layers", name, "-o", "never"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"--fp32-layers names layer {name!r}, but the optimizer {blamed}"), err
    assert not any("calibrating" in line for line in err) and not Path("never").exists()


def test_inspect_without_a_shape_lists_everything_else(tmp_path, capsys):
    text = (EXAMPLE / "squeezenet_v1.1.param").read_text().replace("0=227 1=227 2=3", "")
    (tmp_path / "dyn.param").write_text(text)
    assert main(["inspect", str(tmp_path / "dyn.param"), MODEL[1]]) == 0
    out = capsys.readouterr().out
    conv1 = next(line for line in out.splitlines() if line.startswith("Convolution") and " conv1 " in line)
    assert conv1.split()[2:4] == ["?", "?"] and "weight:fp32:6916" in conv1 and "0=64 1=3 2=1 3=2" in conv1
    assert "MACs: ? (shapes unknown: layer data: input shape unknown" in out


def test_long_onnx_names_keep_the_columns(onnx_model, capsys):
    assert main(["inspect", str(onnx_model)]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    column = lines[0].index("output shape")
    assert any(LONG in line for line in lines)
    for line in lines[1:]:  # every row's shape starts under the header, however long the names before it
        assert line[column - 2:column] == "  " and line[column] != " ", line


def test_calibrate_and_compile_share_one_keyword_and_lists_of_paths(tmp_path):
    paths = [str(p) for p in IMAGES[:4]]
    pre = {"mean": [104, 117, 123], "norm": [1, 1, 1], "shape": [227, 227, 3]}
    graph = ncnnc.load_model(MODEL)
    ncnnc.optimize(graph)
    direct = calibrate(graph, lists=paths, method="percentile", method_params={"percentile": 99.9}, **pre)
    listed = tmp_path / "four.txt"
    listed.write_text("\n".join(paths) + "\n")
    assert main(["compile", *MODEL, "--int8", "--calib", str(listed), "mean=[104,117,123]", "norm=[1,1,1]",
                 "shape=[227,227,3]", "method=percentile", "percentile=99.9", "thread=1", "-o", str(tmp_path)]) == 0
    cli = CalibrationTable.load(tmp_path / "model.table")
    python = ncnnc.compile(MODEL, calib=paths, method="percentile", method_params={"percentile": 99.9}, **pre)
    for name, scale in direct.table.input_scales.items():
        assert cli.input_scales[name] == pytest.approx(scale, rel=1e-5)
        assert python.table.input_scales[name] == pytest.approx(scale, rel=1e-5)
    kl = calibrate(graph, lists=paths, method="kl", **pre)
    assert kl.table.input_scales != direct.table.input_scales  # the parameter reached the method


def test_compile_and_eval_count_quantized_layers_alike(tmp_path, capsys):
    """The model's last layer is a quantized InnerProduct producing the output (eval left it out)."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("data", (3, 16, 16))
    c = b.layer("Convolution", [x], {0: 4, 1: 3, 4: 1, 5: 1, 6: 108},
                {"weight": rng.standard_normal((4, 3, 3, 3)), "bias": rng.standard_normal(4)})
    r = b.layer("ReLU", [c])
    b.layer("InnerProduct", [r], {0: 10, 1: 1, 2: 10 * 1024},
            {"weight": rng.standard_normal((10, 1024)) * 0.01, "bias": rng.standard_normal(10)})
    save(b.build(), tmp_path / "tiny.param", tmp_path / "tiny.bin")
    model = [str(tmp_path / "tiny.param"), str(tmp_path / "tiny.bin")]
    pre = ["mean=[104,117,123]", "shape=[16,16,3]"]
    assert main(["compile", *model, "--int8", "--calib", str(EXAMPLE / "images"), *pre, "thread=1",
                 "-o", str(tmp_path / "out")]) == 0
    compiled = capsys.readouterr().out
    assert "quantized layers: int8 2, weight-only int8 0, kept fp32 0" in compiled
    assert main(["eval", *model, str(tmp_path / "out" / "model.param"), str(tmp_path / "out" / "model.bin"),
                 str(EXAMPLE / "images"), *pre, "--limit", "4", "--backend", "numpy", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["quantized_layers"] == 2 and {e["layer"] for e in result["layer_cosine"]} == {
        layer.name for layer in load(tmp_path / "out" / "model.param").layers if layer.type != "Input"
        and layer.type != "ReLU"}


def test_calibration_shows_a_progress_bar_on_a_terminal(tmp_path):
    """``ncnnc table`` with its stderr on a pseudo-terminal (80 columns): tqdm bars per pass, over images."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "ncnnc", "table", *MODEL, str(EXAMPLE / "images"),
                             str(tmp_path / "t.table"), "mean=[104,117,123]", "shape=[227,227,3]", "thread=1",
                             "method=kl"], stderr=secondary, stdout=subprocess.DEVNULL)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait() == 0
    text = b"".join(chunks).decode(errors="replace")
    assert re.search(r"kl pass 1/2: +\d+%.*\| *\d+/32 ", text), text[-500:]
    assert "kl pass 2/2" in text and "img/s" in text


def test_the_python_api_checks_what_the_cli_checks():
    """``ncnnc.compile`` took ``target_cos=0`` with auto mixed precision, and read ``fp32_layers="conv1"`` as
    the names ``c``, ``o``, ``n``, ... (a string is a comma-separated list, as on the command line);
    ``ncnnc.load_model`` read one path given as a string as its characters."""
    calib = str(EXAMPLE / "images")
    with pytest.raises(ncnnc.NcnncError, match=re.escape("--target-cos 0: expected a number in (0, 1]")):
        ncnnc.compile(MODEL, calib=calib, auto_mixed_precision=True, target_cos=0)
    with pytest.raises(ncnnc.NcnncError, match="names layer 'nosuch', which the model does not have"):
        ncnnc.compile(MODEL, calib=calib, fp32_layers="conv1,nosuch")
    # one path as a string or Path is one path (it was read as its characters: "no frontend reads '/ w o r k ...'")
    assert len(ncnnc.load_model(MODEL[0]).layers) == len(ncnnc.load_model(Path(MODEL[0])).layers) == 75


def test_eval_compares_shifted_layers_with_the_shift_added_back(tmp_path):
    """``--asymmetric`` models output ``x - c`` from their ReLU producers: eval's per-layer cosine against
    the fp32 ``x`` came out negative (-0.49 for SqueezeNet's squeeze layers) until ``c`` was added back."""
    from ncnnc.core.evaluate import evaluate

    pre = {"mean": [104, 117, 123], "norm": [1, 1, 1], "shape": [227, 227, 3]}
    ncnnc.compile(MODEL, calib=[str(p) for p in IMAGES[:8]], asymmetric=True, out_dir=tmp_path, **pre)
    int8 = (tmp_path / "model.param", tmp_path / "model.bin")
    shifted = [layer for layer in load(*int8).layers if layer.type == "Convolution"
               and layer.p("activation_type") == 3 and layer.p("activation_params")[0] < 0]
    assert len(shifted) >= 20  # the model under test is shifted
    result = evaluate(tuple(MODEL), int8, IMAGES[8:12], backend="numpy", **pre)
    assert len(result.layer_cosine) == 26 and min(cos for _, cos in result.layer_cosine) > 0.95, result.layer_cosine
