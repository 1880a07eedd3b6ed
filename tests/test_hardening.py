"""Issue 12's classes, each from its minimal reproducer: no hang, no traceback, no model ncnn refuses,
nothing half-written, no allocation beyond the memory limit.  Every case runs the real CLI; every model
written is loaded by the real ncnn runtime."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import ncnn
import onnx
import pytest

from ncnnc.backends.ncnn_writer import param_bin
from ncnnc.core.cli import main
from ncnnc.frontends.ncnn import load

GOOD = """7767517
3 3
Input            data   0 1 data 0=8 1=8 2=3
Convolution      conv   1 1 data conv 0=2 1=1 5=1 6=6
ReLU             relu   1 1 conv out
"""
GOOD_BIN = b"\0\0\0\0" + struct.pack("<6f", *range(6)) + struct.pack("<2f", 0.5, -0.5)


def fails(capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI; assert one error line, exit 2, no traceback, and the fragments in the line."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert status == 2, err
    assert "Traceback" not in err and [line for line in err.splitlines() if "error:" in line] == [last], err
    for fragment in fragments:
        assert fragment in last, last
    return last


def runtime_loads(param: Path, binf: Path) -> bool:
    """The real ncnn runtime's verdict on a model."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    return net.load_param(str(param)) == 0 and net.load_model(str(binf)) == 0


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    """The small good model on disk."""
    (tmp_path / "m.param").write_text(GOOD)
    (tmp_path / "m.bin").write_bytes(GOOD_BIN)
    return tmp_path / "m.param", tmp_path / "m.bin"


def _optimize(tmp_path: Path, param_text: str) -> list[str]:
    (tmp_path / "x.param").write_text(param_text)
    (tmp_path / "x.bin").write_bytes(GOOD_BIN)
    return ["optimize", tmp_path / "x.param", tmp_path / "x.bin", tmp_path / "o.param", tmp_path / "o.bin"]


# -- 1. hangs: readers only move forward; inputs are regular files --------------------------------------
def test_negative_array_length_in_param_bin_is_an_error_not_a_loop(tmp_path, model):
    """A ``.param.bin`` array whose length is negative used to move the read position backwards forever."""
    graph = load(*model)
    graph.layer("data").params[5] = [8]  # an array param (an id Input ignores), so the file holds an array length
    data = bytearray(param_bin(graph))
    at = data.index(struct.pack("<ii", -23305, 1))
    data[at + 4:at + 8] = struct.pack("<i", -2)
    (tmp_path / "x.param.bin").write_bytes(bytes(data))
    code = ("import sys; from ncnnc.core.cli import main; "
            f"sys.exit(main(['inspect', {str(tmp_path / 'x.param.bin')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "array param 5 has a negative length -2" in done.stderr, done.stderr


def test_fifo_given_as_a_model_is_refused_at_once(tmp_path, model):
    os.mkfifo(tmp_path / "fifo.param")
    code = ("import sys; from ncnnc.core.cli import main; "
            f"sys.exit(main(['optimize', {str(tmp_path / 'fifo.param')!r}, {str(model[1])!r}, "
            f"{str(tmp_path / 'o.param')!r}, {str(tmp_path / 'o.bin')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "it is a FIFO, not a regular file" in done.stderr, done.stderr


def test_dev_zero_as_an_image_list_is_refused(capsys, model, tmp_path):
    fails(capsys, ["table", *model, "/dev/zero", tmp_path / "t.table", "shape=[8,8,3]"],
          "/dev/zero", "it is a device, not a regular file")


# -- 2. tracebacks -> one line --------------------------------------------------------------------
@pytest.mark.parametrize("edit, fragments", [
    (("1=1 5=1", "1=1 3=0 5=1"), ("line 4", "param 3 (stride_w) is 0, must be at least 1")),
    (("1=1 5=1", "1=1 2=0 5=1"), ("line 4", "param 2 (dilation_w) is 0")),
    (("0=2 1=1", "0=1,2 1=1"), ("line 4", "param 0 (num_output): expected one number, got a list of 2")),
    (("6=6", "6=inf"), ("line 4", "param value 'inf' is not a number")),
    (("6=6", "6=-6"), ("line 4", "param 6 (weight_data_size) is -6, must not be negative")),
    (("6=6", "6=1e9"), ("line 4", "param 6 (weight_data_size): expected an integer, got 1000000000.0")),
    (("6=6", "6=7"), ("line 4", "weight weight of 7 values does not split into the params' shape")),
])
def test_bad_params_are_one_line_naming_the_line(capsys, tmp_path, edit, fragments):
    fails(capsys, _optimize(tmp_path, GOOD.replace(*edit)), "x.param", *fragments)
    assert not (tmp_path / "o.param").exists()


def test_onnx_initializer_dims_and_type(capsys, tmp_path, squeezenet_dir):
    m = onnx.load(squeezenet_dir / "squeezenet_v1.1.onnx")
    m.graph.initializer[0].dims[0] += 1
    onnx.save(m, tmp_path / "dims.onnx")
    fails(capsys, ["convert", tmp_path / "dims.onnx", tmp_path / "o.param", tmp_path / "o.bin"],
          "initializer 'conv1.weight' has dims [65, 3, 3, 3] (1755 values) but stores 1728")
    m.graph.initializer[0].dims[0] -= 1
    m.graph.initializer[0].data_type = 99
    onnx.save(m, tmp_path / "type.onnx")
    fails(capsys, ["convert", tmp_path / "type.onnx", tmp_path / "o.param", tmp_path / "o.bin"],
          "initializer 'conv1.weight' has unknown data type 99")


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_and_long_list_line(capsys, tmp_path, model):
    (tmp_path / "bomb.png").write_bytes(_png_claiming(100000, 100000))
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'bomb.png'}\n")
    fails(capsys, ["table", *model, tmp_path / "list.txt", tmp_path / "t.table", "shape=[8,8,3]"], "bomb.png")
    (tmp_path / "list.txt").write_text("x" * 200000 + "\n")
    fails(capsys, ["table", *model, tmp_path / "list.txt", tmp_path / "t.table", "shape=[8,8,3]"],
          "list.txt: line 1: bad file name", "File name too long")
    assert not (tmp_path / "t.table").exists()


def test_outputs_in_a_missing_folder_or_onto_a_folder(capsys, tmp_path, model):
    fails(capsys, ["optimize", *model, tmp_path / "nope" / "o.param", tmp_path / "o.bin"],
          "cannot write into", "No such file or directory")
    (tmp_path / "d").mkdir()
    fails(capsys, ["optimize", *model, tmp_path / "o.param", tmp_path / "d"], "the output is a directory")
    assert not (tmp_path / "o.param").exists() and not (tmp_path / "o.bin").exists()


# -- 3. never a model ncnn refuses -----------------------------------------------------------------
@pytest.mark.parametrize("edit, fragment", [
    (("0=2 1=1", "0=2 40=1 1=1"), "param id 40 is outside ncnn's range 0-31"),
    (("0=2 1=1", "0=2 65536=1 1=1"), "param id 65536"),
    (("0=2 1=1", "0=2 2147483647=1 1=1"), "param id 2147483647"),
    (("0=2 1=1", "0=2 -1=1 1=1"), "param id -1"),
    (("0=2 1=1", "0=2 1=1 7=2147483648"), "2147483648 does not fit in int32"),
    (("0=2 1=1", "0=2 1=1 -23330=3,3,8,8"), "shape hint"),
    (("0=2 1=1", '0=2 1=1 31="abc"'), "the feature mask (31=) must be one integer"),
    (("ReLU             relu", "ArgMax           relu"), "layer type ArgMax is not in ncnn's default build"),
    (("Convolution      conv", "Mystery          conv"), "unknown layer type 'Mystery'"),
    (("ReLU             relu   1 1 conv out", "ReLU             relu   1 2 conv out o2"),
     "a ReLU layer with these params takes one input and gives one output, not 1 and 2"),
])
def test_what_ncnn_refuses_is_refused_with_its_line(capsys, tmp_path, edit, fragment):
    text = GOOD.replace(*edit).replace("3 3\n", "3 4\n") if "o2" in edit[1] else GOOD.replace(*edit)
    (tmp_path / "raw.param").write_text(text)
    (tmp_path / "raw.bin").write_bytes(GOOD_BIN)
    assert not runtime_loads(tmp_path / "raw.param", tmp_path / "raw.bin")  # the reproducer: ncnn refuses it
    line = fails(capsys, _optimize(tmp_path, text), fragment)
    assert "line 4" in line or "line 5" in line


def test_depthwise_group_must_divide_num_output(capsys, tmp_path):
    text = GOOD.replace("Convolution      conv   1 1 data conv 0=2 1=1 5=1 6=6",
                        "ConvolutionDepthWise conv 1 1 data conv 0=3 1=1 5=1 6=3 7=2")
    fails(capsys, _optimize(tmp_path, text), "line 4", "group 2 does not divide num_output 3")


def test_written_models_load_in_the_runtime(capsys, tmp_path, model):
    assert main(["optimize", *map(str, model), str(tmp_path / "o.param"), str(tmp_path / "o.bin")]) == 0
    assert runtime_loads(tmp_path / "o.param", tmp_path / "o.bin")


# -- 4. all outputs or none ---------------------------------------------------------------------------
def test_same_path_twice_and_device_outputs(capsys, tmp_path, model):
    fails(capsys, ["optimize", *model, tmp_path / "o.param", tmp_path / "o.param"], "two outputs are the same file")
    assert not (tmp_path / "o.param").exists()
    fails(capsys, ["optimize", *model, tmp_path / "o.param", "/dev/null"], "/dev/null", "the output is a device")
    assert Path("/dev/null").is_char_device() and not (tmp_path / "o.param").exists()


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(capsys, tmp_path, model):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".o.param.ncnnc-{pid}-0123abcd.tmp"
    stale.write_text("half")
    (tmp_path / f".o.bin.ncnnc-{pid}-4567abcd.tmp").write_bytes(b"x" * 5)
    live = tmp_path / f".o.param.ncnnc-{os.getpid()}-89abcdef.tmp"  # a live process's: left alone
    live.write_text("mine")
    assert main(["optimize", *map(str, model), str(tmp_path / "o.param"), str(tmp_path / "o.bin")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "m.bin", "m.param", "o.bin", "o.param"])


def test_a_journal_left_by_a_kill_mid_rename_is_completed(capsys, tmp_path, model):
    """SIGKILL between the renames of one commit: the next run finishes the commit from the journal."""
    import json

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    done, pending = tmp_path / "a.param", tmp_path / f".a.bin.ncnnc-{dead}-00000001.tmp"
    done.write_text("new param")
    pending.write_bytes(b"new bin")
    journal = tmp_path / f".a.param.ncnnc-{dead}-00000002.journal"
    journal.write_text(json.dumps([[str(tmp_path / "gone.tmp"), str(done)], [str(pending), str(tmp_path / "a.bin")]]))
    assert main(["optimize", *map(str, model), str(tmp_path / "o.param"), str(tmp_path / "o.bin")]) == 0
    assert (tmp_path / "a.bin").read_bytes() == b"new bin" and not journal.exists() and not pending.exists()


# -- 5. resources --------------------------------------------------------------------------------------
def test_memory_limit_names_the_layer_and_the_size(capsys, tmp_path):
    huge = GOOD.replace("0=8 1=8 2=3", "0=100000 1=100000 2=3")
    (tmp_path / "h.param").write_text(huge)
    fails(capsys, ["inspect", tmp_path / "h.param"], "layer data", "blob data of shape [3, 100000, 100000]",
          "needs 111.8 GiB", "--max-memory")
    fails(capsys, ["inspect", tmp_path / "h.param", "--max-memory", "1M"], "more than the memory limit 1.0 MiB")


def test_shape_option_beyond_the_limit(capsys, tmp_path, model, image_paths):
    (tmp_path / "list.txt").write_text(f"{image_paths[0]}\n")
    fails(capsys, ["table", *model, tmp_path / "list.txt", tmp_path / "t.table", "shape=[100000,100000,3]"],
          "the resized image (shape=) of shape [3, 100000, 100000]", "memory limit")
    fails(capsys, ["table", *model, tmp_path / "list.txt", tmp_path / "t.table", "shape=[8,8,3]", "method=percentile",
                   "--max-memory", "x"], "--max-memory x: expected a size")


def test_default_limit_follows_an_address_space_rlimit():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31)); "
            "from ncnnc.core.resources import memory_limit; print(memory_limit())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "NCNNC_MAX_MEMORY"})
    assert int(done.stdout) == 2**30, done.stderr


def test_a_method_parameter_its_calibrator_refuses(capsys, tmp_path, model, image_paths):
    (tmp_path / "list.txt").write_text(f"{image_paths[0]}\n")
    fails(capsys, ["table", *model, tmp_path / "list.txt", tmp_path / "t.table", "shape=[8,8,3]", "method=percentile",
                   "percentile=200"], "method percentile (percentile=200.0): percentile must be in (0, 100]")
    assert not (tmp_path / "t.table").exists()


def test_onnx_node_with_the_wrong_number_of_inputs(capsys, tmp_path, squeezenet_dir):
    """Found by the fuzz campaign: a Relu node retyped as Add (one input) was an IndexError in the mapper."""
    m = onnx.load(squeezenet_dir / "squeezenet_v1.1.onnx")
    next(n for n in m.graph.node if n.op_type == "Relu").op_type = "Add"
    onnx.save(m, tmp_path / "arity.onnx")
    fails(capsys, ["convert", tmp_path / "arity.onnx", tmp_path / "o.param", tmp_path / "o.bin"],
          "arity.onnx", "(Add) has 1 inputs; Add takes 2 to 2")


@pytest.mark.parametrize("edit, fragment", [
    (("ReLU             relu   1 1 conv out", "Pooling          relu   1 1 conv out 0=2147483647 1=2"),
     "param 0 (pooling_type) is 2147483647; ncnn accepts 0 to 1"),
    (("1=1 5=1", "1=1 5=1 9=2"), "param 9 (activation_type) is 2, which needs 1 activation_params (param 10)"),
    (("ReLU             relu   1 1 conv out", "BatchNorm        relu   1 1 conv out 0=0"),
     "weight slope would have 0 values (ncnn refuses to load an empty weight)"),
])
def test_what_the_newer_runtime_refuses(capsys, tmp_path, edit, fragment):
    """Found by the fuzz campaign: the runtime's load_param checks enumerations and activation params, and
    its load_model refuses empty weights."""
    text = GOOD.replace(*edit)
    (tmp_path / "raw.param").write_text(text)
    (tmp_path / "raw.bin").write_bytes(GOOD_BIN)
    assert not runtime_loads(tmp_path / "raw.param", tmp_path / "raw.bin")
    fails(capsys, _optimize(tmp_path, text), fragment)


def test_found_by_the_campaign_adaptive_pooling_and_missing_onnx_attribute(capsys, tmp_path, squeezenet_dir):
    """Pooling 7=1 without out_w (refused by the runtime) and an ONNX MaxPool without kernel_shape (KeyError)."""
    text = GOOD.replace("ReLU             relu   1 1 conv out", "Pooling          relu   1 1 conv out 0=1 7=1")
    (tmp_path / "raw.param").write_text(text)
    (tmp_path / "raw.bin").write_bytes(GOOD_BIN)
    assert not runtime_loads(tmp_path / "raw.param", tmp_path / "raw.bin")
    fails(capsys, _optimize(tmp_path, text), "line 5", "adaptive pooling needs out_w and out_h of at least 1")
    m = onnx.load(squeezenet_dir / "squeezenet_v1.1.onnx")
    del next(n for n in m.graph.node if n.op_type == "MaxPool").attribute[:]
    onnx.save(m, tmp_path / "noattr.onnx")
    fails(capsys, ["convert", tmp_path / "noattr.onnx", tmp_path / "o.param", tmp_path / "o.bin"],
          "(MaxPool) lacks the required attribute kernel_shape")


def test_auto_mixed_precision_on_zero_images(capsys, tmp_path, model, image_paths):
    """Found by the campaign: --amp-images 0 was an IndexError after calibration."""
    (tmp_path / "list.txt").write_text(f"{image_paths[0]}\n")
    fails(capsys, ["compile", *model, "--int8", "--calib", tmp_path / "list.txt", "shape=[8,8,3]",
                   "--auto-mixed-precision", "--amp-images", "0", "-o", tmp_path / "out"],
          "--amp-images 0: need at least 1")
    assert not (tmp_path / "out" / "model.param").exists()
