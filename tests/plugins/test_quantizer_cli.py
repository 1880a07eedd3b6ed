"""``ncnnc quantize``: ncnn2int8's command line, and its one-line errors on bad input."""

from __future__ import annotations

import pytest

from ncnnc.core.cli import main


@pytest.fixture()
def ref(squeezenet_dir):
    return squeezenet_dir / "ncnn-reference"


def test_quantize_writes_ncnn2int8s_bytes(ref, tmp_path, capsys):
    out_param, out_bin = tmp_path / "q.param", tmp_path / "q.bin"
    args = [str(ref / "squeezenet_v1.1-opt32.param"), str(ref / "squeezenet_v1.1-opt32.bin"),
            str(out_param), str(out_bin), str(ref / "squeezenet_v1.1-kl.table")]
    assert main(["quantize", *args]) == 0
    assert out_bin.read_bytes() == (ref / "squeezenet_v1.1-int8-kl.bin").read_bytes()
    assert out_param.read_text() == (ref / "squeezenet_v1.1-int8-kl.param").read_text()
    assert "int8: 26 layers" in capsys.readouterr().out


def test_quantize_asymmetric_runs_in_the_runtime_as_simulated(ref, tmp_path, capsys, image_paths):
    """ncnn2table's own kl table, asymmetric inputs: every layer but conv1 (it reads the image) is shifted."""
    import numpy as np

    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.backends.numpy.interpreter import Interpreter
    from ncnnc.core.calibration import input_specs
    from ncnnc.frontends.ncnn import load

    out_param, out_bin = tmp_path / "q.param", tmp_path / "q.bin"
    assert main(["quantize", str(ref / "squeezenet_v1.1-opt32.param"), str(ref / "squeezenet_v1.1-opt32.bin"),
                 str(out_param), str(out_bin), str(ref / "squeezenet_v1.1-kl.table"), "--asymmetric"]) == 0
    assert "int8: 26 layers (requantize fusion on 0, asymmetric inputs on 25)" in capsys.readouterr().out
    graph = load(out_param, out_bin)
    specs = input_specs(graph, [image_paths[:3]], mean=[[104, 117, 123]], norm=[[1, 1, 1]], shape=[[227, 227, 3]])
    net, sim = RuntimeNet(out_param, out_bin), Interpreter(graph)
    for i in range(3):
        x = specs[0].load(i)
        np.testing.assert_allclose(net.run({"data": x}, ["prob"])["prob"].ravel(),
                                   sim.run({"data": x[None]}, ["prob"])["prob"].ravel(), rtol=1e-4, atol=1e-5)


def _bad_table(ref, tmp_path, edit):
    lines = (ref / "squeezenet_v1.1-kl.table").read_text().splitlines()
    path = tmp_path / "bad.table"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def _replace_scale(value):
    def edit(lines):
        return [(line.split()[0] + f" {value}" if line.startswith("fire3/expand1x1 ") else line) for line in lines]
    return edit


@pytest.mark.parametrize("edit,message", [
    (_replace_scale("nan"), "bad.table: line 32: scale nan of 'fire3/expand1x1' is not a positive finite number"),
    (_replace_scale("0"), "line 32: scale 0.0 of 'fire3/expand1x1' is not a positive finite number"),
    (_replace_scale("-3.5"), "line 32: scale -3.5 of 'fire3/expand1x1' is not a positive finite number"),
    (lambda lines: [*lines, "fire99/conv 12.5"], "layer fire99/conv: the table names a layer the model does not have"),
    (lambda lines: [line.replace("conv10_param_0 ", "conv10_param_0 1.0 ") for line in lines],
     "layer conv10: the table has 1001 weight scales, the Convolution needs 1000"),
])
def test_bad_table_one_line_exit_2_nothing_written(ref, tmp_path, capsys, edit, message):
    table = _bad_table(ref, tmp_path, edit)
    out_param, out_bin = tmp_path / "q.param", tmp_path / "q.bin"
    status = main(["quantize", str(ref / "squeezenet_v1.1-opt32.param"), str(ref / "squeezenet_v1.1-opt32.bin"),
                   str(out_param), str(out_bin), str(table)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("ncnnc quantize: error: ") and err.count("\n") == 1
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.table"]


def test_int8_model_where_fp32_expected(ref, tmp_path, capsys):
    status = main(["quantize", str(ref / "squeezenet_v1.1-int8-kl.param"), str(ref / "squeezenet_v1.1-int8-kl.bin"),
                   str(tmp_path / "q.param"), str(tmp_path / "q.bin"), str(ref / "squeezenet_v1.1-kl.table")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "squeezenet_v1.1-int8-kl.param: layer conv1: this is already an int8 model" in err
    assert list(tmp_path.iterdir()) == []
