"""Fuzz cases for ``bench/fuzz.py``: real inputs of every class, mutated, and the ``ncnnc`` command that reads them.

A case is drawn from ``random.Random`` seeded by ``(seed, index)``, so any case can be replayed alone.
Each input class has one generator: it mutates a real file (the shared SqueezeNet in ncnn, Caffe and
ONNX form, ncnn2table's reference table, small real ImageNet images, a list of them, the options of
``compile``, the output paths) with structure-aware edits (the values ncnn's loader and ncnnc's
readers are sensitive to: ids, counts, sizes, strides, dims, data types, scales, image headers, path
kinds) or plain byte damage, and names the command and the outputs it must write on success.
"""

from __future__ import annotations

import io
import os
import random
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NCNNC_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "squeezenet_v1.1"

INTERESTING_INTS = (0, 1, -1, 2, 3, 7, 15, 16, 31, 32, 40, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31),
                    -(2**31) - 1, 2**32, -233, -23300, -23330, 10**9, 10**12)
INTERESTING_TEXT = ("0", "-1", "1", "40", "65536", "2147483647", "2147483648", "-2147483649", "99999999999999999",
                    "1e40", "-1e40", "inf", "nan", "-inf", "1.5", "0.0", "-0.5", "1,2", "1,2,3,4,5", "abc", "",
                    '"x"', "0x10", "1e-45", "3.4e38", "-233", "00000000000000001", "1" * 40)
PLAUSIBLE_TEXT = ("0", "1", "2", "3", "4", "8", "16", "64", "0.5", "1.0", "-233")
PARAM_IDS = ("0", "1", "2", "3", "6", "7", "11", "13", "30", "31", "32", "40", "65536", "-1", "-23300", "-23330",
             "-23340", "2147483647", "-2147483648")


@dataclass
class Base:
    """The real inputs every case starts from (bytes, read once)."""

    param: bytes
    bin: bytes
    param_bin: bytes
    opt_param: bytes
    opt_bin: bytes
    table: bytes
    prototxt: bytes
    caffemodel: bytes
    onnx: bytes
    images: list[bytes]


@dataclass
class Case:
    """One fuzz case: files to create in a fresh folder, the argv, and the outputs a success must write."""

    cls: str
    index: int
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    setup: list[tuple[str, str]] = field(default_factory=list)
    """Extra path kinds to create before running: ``("fifo"|"dir"|"symlink:TARGET"|"readonly_dir", name)``."""
    outputs: list[str] = field(default_factory=list)
    models: list[tuple[str, str]] = field(default_factory=list)
    """(param, bin) pairs among the outputs that the ncnn runtime must load after a success."""
    note: str = ""


def load_base(workdir: Path) -> Base:
    """Read the shared real inputs; the binary ``.param.bin`` and small images are made once in ``workdir``."""
    from PIL import Image

    from ncnnc.backends.ncnn_writer import param_bin
    from ncnnc.frontends.ncnn import load

    graph = load(MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin")
    images = []
    for path in sorted((SHARED / "images" / "imagenet-sample").iterdir())[:4]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((72, 72))
            buf = io.BytesIO()
            im.save(buf, "JPEG" if len(images) % 2 == 0 else "PNG")
            images.append(buf.getvalue())
    ref = MODEL / "ncnn-reference"
    return Base(param=(MODEL / "squeezenet_v1.1.param").read_bytes(), bin=(MODEL / "squeezenet_v1.1.bin").read_bytes(),
                param_bin=param_bin(graph), opt_param=(ref / "squeezenet_v1.1-opt32.param").read_bytes(),
                opt_bin=(ref / "squeezenet_v1.1-opt32.bin").read_bytes(),
                table=(ref / "squeezenet_v1.1-kl.table").read_bytes(),
                prototxt=(MODEL / "squeezenet_v1.1.prototxt").read_bytes(),
                caffemodel=(MODEL / "squeezenet_v1.1.caffemodel").read_bytes(),
                onnx=(MODEL / "squeezenet_v1.1.onnx").read_bytes(), images=images)


# -- generic byte damage ------------------------------------------------------------------------
def damage_bytes(rng: random.Random, data: bytes, max_edits: int = 4) -> bytes:
    """Flip, overwrite, insert, delete, duplicate or truncate: a few random byte-level edits."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, max_edits)):
        if not buf:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            continue
        op = rng.randrange(7)
        pos = rng.randrange(len(buf))
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3:
            del buf[pos:pos + rng.randint(1, 64)]
        elif op == 4:
            end = min(len(buf), pos + rng.randint(1, 256))
            buf[pos:pos] = buf[pos:end]
        elif op == 5:
            del buf[pos:]
        else:
            value = rng.choice(INTERESTING_INTS)
            buf[pos & ~3:(pos & ~3) + 4] = struct.pack("<q", value)[:4]
    return bytes(buf)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").split("\n")


def mutate_text_tokens(rng: random.Random, text: str, pattern: str, values: tuple[str, ...], edits: int = 3) -> str:
    """Replace a few matches of ``pattern`` (its group 1) by interesting values."""
    matches = list(re.finditer(pattern, text))
    if not matches:
        return text
    for m in sorted(rng.sample(matches, min(len(matches), rng.randint(1, edits))), key=lambda m: -m.start()):
        text = text[:m.start(1)] + rng.choice(values) + text[m.end(1):]
    return text


def mutate_lines(rng: random.Random, lines: list[str], start: int = 0) -> list[str]:
    """Drop, duplicate, swap or truncate a line (from ``start`` on)."""
    lines = list(lines)
    if len(lines) <= start + 1:
        return lines
    i = rng.randrange(start, len(lines))
    j = rng.randrange(start, len(lines))
    op = rng.randrange(4)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    elif op == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
    return lines


# -- ncnn .param / .param.bin / .bin ---------------------------------------------------------------
def mutate_param_text(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware edits of a text ``.param``: values, ids, types, counts, blob names, lines."""
    lines = _lines(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        body = [i for i in range(2, len(lines)) if lines[i].strip()]
        if not body:
            break
        i = rng.choice(body)
        if op == 0:  # a param value: plausible (the model may still be valid) or hostile
            values = PLAUSIBLE_TEXT if rng.random() < 0.5 else INTERESTING_TEXT
            lines[i] = mutate_text_tokens(rng, lines[i], r"(?<=\s)-?\d+=([^\s]+)", values)
        elif op == 1:  # a param id
            lines[i] = mutate_text_tokens(rng, lines[i], r"(?<=\s)(-?\d+)=", PARAM_IDS)
        elif op == 2:  # add a param
            lines[i] += f" {rng.choice(PARAM_IDS)}={rng.choice(INTERESTING_TEXT)}"
        elif op == 3:  # the layer type
            words = lines[i].split()
            words[0] = rng.choice(("Convolution", "Pooling", "ReLU", "Split", "Concat", "InnerProduct", "Softmax",
                                   "Mystery", "Interp", "ConvolutionDepthWise", "Reshape", "Input", "Dropout",
                                   "Crop", "MemoryData", "Deconvolution", "Eltwise", "BinaryOp", "x" * 300))
            lines[i] = " ".join(words)
        elif op == 4:  # blob counts / names
            words = lines[i].split()
            k = rng.randrange(1, min(len(words), 6))
            words[k] = rng.choice(("0", "1", "2", "-1", "1000000", "data", "prob", "x" * 300, words[k] + "_"))
            lines[i] = " ".join(words)
        elif op == 5:  # header counts
            lines[1] = mutate_text_tokens(rng, lines[1], r"(-?\d+)", ("0", "-1", "1", "48", "49", "1000000000"))
        elif op == 6:  # shape hints
            lines[i] += " -23330=" + rng.choice(("4,3,227,227,3", "5,3,1,1,1,1", "1", "0", "-1,1", "8,3,1,1,1,3,1,1,1",
                                                 "4,9,1,1,1", "4,3,-5,1,1"))
        else:
            lines = mutate_lines(rng, lines, 2)
    return "\n".join(lines).encode()


def mutate_param_bin(rng: random.Random, data: bytes) -> bytes:
    """Overwrite a few aligned int32 words of a ``.param.bin`` with interesting values (or damage bytes)."""
    if rng.random() < 0.2:
        return damage_bytes(rng, data)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(buf) // 4) * 4
        value = rng.choice((*INTERESTING_INTS, -23300 - rng.randrange(40), -233, -23400, *range(5)))
        buf[pos:pos + 4] = struct.pack("<i", max(-(2**31), min(2**31 - 1, value)))
    return bytes(buf)


def mutate_bin(rng: random.Random, data: bytes) -> bytes:
    """Damage a ``.bin``: storage tags, truncation, inserted or removed bytes, NaN/inf weights."""
    buf = bytearray(data)
    op = rng.randrange(5)
    if op == 0:
        pos = rng.randrange(len(buf) // 4) * 4
        buf[pos:pos + 4] = struct.pack("<I", rng.choice((0x01306B47, 0x000D4B38, 0x0002C056, 1, 0xFFFFFFFF, 0)))
    elif op == 1:
        pos = rng.randrange(len(buf) // 4) * 4
        buf[pos:pos + 4] = struct.pack("<f", rng.choice((float("nan"), float("inf"), -float("inf"), 3.4e38, 1e-45)))
    elif op == 2:
        del buf[rng.randrange(len(buf)):]
    else:
        return damage_bytes(rng, data)
    return bytes(buf)


# -- table, prototxt, caffemodel, onnx -------------------------------------------------------------
def mutate_table(rng: random.Random, data: bytes) -> bytes:
    """Scales (0, negative, NaN, inf, huge, missing), names, line order of a calibration table."""
    text = data.decode()
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        if op == 0:
            text = mutate_text_tokens(rng, text, r"(?<=\s)([-+0-9.e]+)(?=\s|$)",
                                      ("0", "-1", "nan", "inf", "-inf", "1e40", "1e-45", "", "x", "0.0", "1,2"))
        elif op == 1:
            text = mutate_text_tokens(rng, text, r"(?m)^(\S+)", ("conv1_param_0", "nope", "data", "x" * 300, "#"))
        elif op == 2:
            text = "\n".join(mutate_lines(rng, text.split("\n")))
        else:
            return damage_bytes(rng, data)
    return text.encode()


def mutate_prototxt(rng: random.Random, data: bytes) -> bytes:
    """Numbers, types, bottoms/tops and lines of a Caffe prototxt."""
    text = data.decode()
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        if op == 0:
            text = mutate_text_tokens(rng, text, r":\s*(-?\d+)", ("0", "-1", "2147483648", "65536", "100000", "3"))
        elif op == 1:
            text = mutate_text_tokens(rng, text, r'type:\s*"(\w+)"',
                                      ("Convolution", "Pooling", "Concat", "Eltwise", "Mystery", "InnerProduct",
                                       "Softmax", "ReLU", "Dropout", "Input"))
        elif op == 2:
            text = mutate_text_tokens(rng, text, r'(?:bottom|top):\s*"([^"]+)"', ("data", "conv1", "pool1", "nope",
                                                                                     "fire2/concat", "prob"))
        elif op == 3:  # a duplicated bottom (or top) line
            lines = text.split("\n")
            idx = [i for i, line in enumerate(lines) if "bottom:" in line or "top:" in line]
            i = rng.choice(idx)
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        else:
            text = "\n".join(mutate_lines(rng, text.split("\n")))
    return text.encode()


def mutate_caffemodel(rng: random.Random, data: bytes) -> bytes:
    """Blob shapes and data of a caffemodel (through the protobuf schema), or byte damage."""
    if rng.random() < 0.4:
        return damage_bytes(rng, data)
    from ncnnc.frontends.caffe_reader import caffe_pb

    net = caffe_pb()["NetParameter"]()
    net.ParseFromString(data)
    layers = [layer for layer in net.layer if len(layer.blobs)]
    layer = rng.choice(layers)
    blob = rng.choice(layer.blobs)
    op = rng.randrange(4)
    if op == 0 and len(blob.shape.dim):
        k = rng.randrange(len(blob.shape.dim))
        blob.shape.dim[k] = rng.choice((0, 1, 2, 3, blob.shape.dim[k] + 1, 10**9, 2**31))
    elif op == 1:
        del blob.data[rng.randrange(len(blob.data)):]
    elif op == 2:
        blob.data.extend([float("nan")] * rng.randint(1, 3))
    else:
        del layer.blobs[rng.randrange(len(layer.blobs))]
    return net.SerializeToString()


def mutate_onnx(rng: random.Random, data: bytes) -> bytes:
    """Initializer dims/types/data, node attributes (strides, kernels, pads, groups), input dims, op types."""
    if rng.random() < 0.2:
        return damage_bytes(rng, data)
    import onnx

    model = onnx.load_model_from_string(data)
    g = model.graph
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(7)
        if op == 0:
            t = rng.choice(list(g.initializer))
            if t.dims:
                t.dims[rng.randrange(len(t.dims))] = rng.choice((0, 1, -1, 2, 65, 10**6, 2**40))
        elif op == 1:
            rng.choice(list(g.initializer)).data_type = rng.choice((0, 2, 3, 6, 7, 10, 11, 16, 99, -1))
        elif op == 2:
            t = rng.choice(list(g.initializer))
            t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data) + 1)]
        elif op == 3:
            node = rng.choice([n for n in g.node if n.attribute])
            attr = rng.choice(list(node.attribute))
            if attr.ints:
                attr.ints[rng.randrange(len(attr.ints))] = rng.choice((0, -1, 1, 2, 7, 10**6, 2**40))
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = rng.choice((0, -1, 2, 10**6))
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = rng.choice((0.0, -1.0, float("nan"), float("inf")))
        elif op == 4:
            dims = g.input[0].type.tensor_type.shape.dim
            dims[rng.randrange(len(dims))].dim_value = rng.choice((0, 1, 2, 7, 100000, 2**31))
        elif op == 5:
            rng.choice(list(g.node)).op_type = rng.choice(("Conv", "Relu", "MaxPool", "Concat", "Mystery", "Gemm",
                                                           "Reshape", "Softmax", "Add", "Resize"))
        else:
            node = rng.choice(list(g.node))
            if node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice([n.output[0] for n in g.node] + ["nope"])
    return model.SerializeToString()


# -- images, lists, options, outputs ---------------------------------------------------------------
def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a tiny (wrong) data stream."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def mutate_image(rng: random.Random, data: bytes) -> bytes:
    """Byte damage, truncation, or a header that claims a huge (or zero) size."""
    op = rng.randrange(5)
    if op == 0:
        return png_header_only(rng.choice((100000, 1, 0, 2**31 - 1, 70000)), rng.choice((100000, 1, 0, 3, 2**20)))
    if op == 1:
        return data[:rng.randrange(len(data))]
    if op == 2:
        return rng.choice((b"", b"not an image", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
    return damage_bytes(rng, data, 8)


COMPILE_OPTIONS = {
    "mean": ("[104,117,123]", "[0,0,0]", "[1,2]", "[]", "[nan,1,1]", "[inf,0,0]", "[1e40,0,0]", "abc", "[1,2,3,4]"),
    "norm": ("[1,1,1]", "[0,0,0]", "[0.017,0.017,0.017]", "[nan,1,1]", "[1]", "[-1,-1,-1]", "x"),
    "shape": ("[64,64,3]", "[32,32,3]", "[0,0,3]", "[-1,64,3]", "[64,64]", "[64,64,1]", "[100000,100000,3]",
              "[2147483648,1,3]", "[64,64,3,2]", "[1,1,3]", "[1e3,64,3]", "[]", "abc", "[20,20,3]"),
    "pixel": ("BGR", "RGB", "GRAY", "RGBA", "BGRA", "RAW", "XYZ", "", "bgr"),
    "method": ("kl", "minmax", "aciq", "eq", "percentile", "mse", "nope", "", "kl:bins=0", "percentile:percentile=200"),
    "thread": ("1", "2", "0", "-1", "x", "100000", "1.5"),
}
"""Values for ``compile``'s ncnn2table-style options: good ones and every kind of bad one."""

FLAG_OPTIONS = (("--max-memory", ("1K", "100M", "8G", "0", "-1", "x", "1e3")),
                ("--target-cos", ("0", "2", "nan", "0.99", "x")),
                ("--amp-images", ("0", "-1", "1", "x")),
                ("--fp32-layers", ("conv1", "nope", ",", "x" * 300)))


def _compile_argv(base_dir: str, calib: str, options: dict[str, str], extra: list[str]) -> list[str]:
    return ["compile", f"{base_dir}/m.param", f"{base_dir}/m.bin", "--int8", "--calib", calib,
            *[f"{k}={v}" for k, v in options.items()], *extra, "-o", "out"]


def _default_options() -> dict[str, str]:
    return {"mean": "[104,117,123]", "norm": "[1,1,1]", "shape": "[32,32,3]", "pixel": "BGR", "method": "minmax",
            "thread": "1"}


OUT_DIR = [("dir", "out")]
"""The output folder of the model-writing cases exists (a missing folder is the ``outputs`` class's business)."""


def _compile_case(cls: str, index: int, base: Base, files: dict[str, bytes], calib: str,
                  options: dict[str, str] | None = None, extra: list[str] | None = None) -> Case:
    files = {"m.param": base.param, "m.bin": base.bin, **files}
    return Case(cls, index, _compile_argv(".", calib, options or _default_options(), extra or []), files,
                outputs=["out/model.param", "out/model.bin", "out/model.table"],
                models=[("out/model.param", "out/model.bin")])


def _image_files(base: Base) -> dict[str, bytes]:
    return {f"img/{i}.{'jpg' if i % 2 == 0 else 'png'}": data for i, data in enumerate(base.images)}


def _list_text(names: list[str]) -> bytes:
    return ("\n".join(names) + "\n").encode()


def _model_case(kind: str, index: int, argv: list[str], files: dict) -> Case:
    """A case whose command writes ``out/o.param`` + ``out/o.bin``, which the runtime must load when it succeeds."""
    return Case(kind, index, argv, files, OUT_DIR, outputs=["out/o.param", "out/o.bin"],
                models=[("out/o.param", "out/o.bin")])


def gen_param(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated text ``.param`` through ``optimize``."""
    files = {"m.param": mutate_param_text(rng, base.param), "m.bin": base.bin}
    return _model_case("param", index, ["optimize", "m.param", "m.bin", "out/o.param", "out/o.bin"], files)


def gen_param_int8(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated text ``.param`` through the whole int8 ``compile``: optimize, calibrate, quantize; every other
    case with ``--exact-input`` (which rewrites the layers that read the image)."""
    files = _image_files(base)
    extra = ["--exact-input"] if rng.random() < 0.5 else []
    return _compile_case("param-int8", index, base, {**files, "m.param": mutate_param_text(rng, base.param),
                                                      "list.txt": _list_text(sorted(files))}, "list.txt",
                         extra=extra)


def gen_param_bin(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated binary ``.param.bin`` through ``optimize`` (written back as text)."""
    files = {"m.param.bin": mutate_param_bin(rng, base.param_bin), "m.bin": base.bin}
    return _model_case("param.bin", index, ["optimize", "m.param.bin", "m.bin", "out/o.param", "out/o.bin"], files)


def gen_bin(rng: random.Random, index: int, base: Base) -> Case:
    """A damaged ``.bin`` through ``optimize``."""
    files = {"m.param": base.param, "m.bin": mutate_bin(rng, base.bin)}
    return _model_case("bin", index, ["optimize", "m.param", "m.bin", "out/o.param", "out/o.bin", "0"], files)


def gen_table(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated calibration table through ``quantize``."""
    files = {"m.param": base.opt_param, "m.bin": base.opt_bin, "m.table": mutate_table(rng, base.table)}
    return _model_case("table", index, ["quantize", "m.param", "m.bin", "out/o.param", "out/o.bin", "m.table"], files)


def gen_prototxt(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated prototxt (with the real caffemodel) through ``convert``."""
    files = {"m.prototxt": mutate_prototxt(rng, base.prototxt), "m.caffemodel": base.caffemodel}
    return _model_case("prototxt", index, ["convert", "m.prototxt", "m.caffemodel", "out/o.param", "out/o.bin"], files)


def gen_caffemodel(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated caffemodel (with the real prototxt) through ``convert``."""
    files = {"m.prototxt": base.prototxt, "m.caffemodel": mutate_caffemodel(rng, base.caffemodel)}
    return _model_case("caffemodel", index,
                       ["convert", "m.prototxt", "m.caffemodel", "out/o.param", "out/o.bin"], files)


def gen_onnx(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated ONNX model through ``convert``."""
    files = {"m.onnx": mutate_onnx(rng, base.onnx)}
    return _model_case("onnx", index, ["convert", "m.onnx", "out/o.param", "out/o.bin"], files)


def gen_image(rng: random.Random, index: int, base: Base) -> Case:
    """Calibration images, one of them damaged, through ``compile``."""
    files = _image_files(base)
    victim = rng.choice(sorted(files))
    files[victim] = mutate_image(rng, files[victim])
    return _compile_case("image", index, base, {**files, "list.txt": _list_text(sorted(files))}, "list.txt")


def gen_list(rng: random.Random, index: int, base: Base) -> Case:
    """A mutated image list (long lines, missing files, folders, devices, FIFOs, /dev/zero) through ``compile``."""
    files = _image_files(base)
    names = sorted(files)
    setup: list[tuple[str, str]] = []
    op = rng.randrange(8)
    if op == 0:
        names.insert(rng.randrange(len(names) + 1), "x" * rng.choice((300, 5000, 200000)))
    elif op == 1:
        names.insert(rng.randrange(len(names) + 1), rng.choice(("nope.jpg", "img", "/dev/null", "/dev/zero", ".",
                                                                  "/", "list.txt", "~", "img/../img/0.jpg")))
    elif op == 2:
        names = []
    elif op == 3:
        setup.append(("fifo", "img/fifo.jpg"))
        names.append("img/fifo.jpg")
    elif op == 4:
        calib = rng.choice(("/dev/zero", "/dev/null", "nope.txt", "img", "fifo.txt", "."))
        if calib == "fifo.txt":
            setup.append(("fifo", "fifo.txt"))
        case = _compile_case("list", index, base, files, calib)
        case.setup = setup
        return case
    elif op == 5:
        return _compile_case("list", index, base, {**files, "list.txt": damage_bytes(rng, _list_text(names))},
                             "list.txt")
    elif op == 6:
        names = names * rng.choice((2, 50))
    else:
        names = [n + rng.choice((" extra words", "\t", "\r", " \x00", "")) for n in names]
    case = _compile_case("list", index, base, {**files, "list.txt": _list_text(names)}, "list.txt")
    case.setup = setup
    return case


def gen_options(rng: random.Random, index: int, base: Base) -> Case:
    """``compile`` with mutated ncnn2table-style options and flags (real images and model)."""
    options = _default_options()
    for key in rng.sample(sorted(COMPILE_OPTIONS), rng.randint(1, 3)):
        options[key] = rng.choice(COMPILE_OPTIONS[key])
    if rng.random() < 0.1:
        options[rng.choice(("bogus", "mean", "x.y"))] = "1"
    extra: list[str] = []
    if rng.random() < 0.4:
        flag, values = rng.choice(FLAG_OPTIONS)
        extra += [flag, rng.choice(values)]
    if rng.random() < 0.1:
        extra.append(rng.choice(("--auto-mixed-precision", "--bogus", "--target", "--emit-asm")))
    files = _image_files(base)
    return _compile_case("options", index, base, {**files, "list.txt": _list_text(sorted(files))}, "list.txt",
                         options, extra)


def gen_outputs(rng: random.Random, index: int, base: Base) -> Case:
    """``optimize`` into odd output paths: missing folders, folders, devices, FIFOs, one path twice, long names."""
    files = {"m.param": base.param, "m.bin": base.bin}
    setup: list[tuple[str, str]] = [("dir", "out")]
    kinds = ("ok", "missing_dir", "is_dir", "dev_null", "fifo", "long", "trailing_slash", "readonly", "symlink_dir",
             "same")
    out_param, out_bin = "out/o.param", "out/o.bin"
    kind = rng.choice(kinds)
    victim = rng.randrange(2)
    path = {"ok": out_param, "missing_dir": "out/nope/o.x", "is_dir": "out/d", "dev_null": "/dev/null",
            "fifo": "out/f", "long": "out/" + "x" * 300, "trailing_slash": "out/o.x/", "readonly": "ro/o.x",
            "symlink_dir": "out/link", "same": out_param}[kind]
    if kind == "is_dir":
        setup.append(("dir", "out/d"))
    elif kind == "fifo":
        setup.append(("fifo", "out/f"))
    elif kind == "readonly":
        setup.append(("readonly_dir", "ro"))
    elif kind == "symlink_dir":
        setup.append(("symlink:.", "out/link"))
    outs = [out_param, out_bin]
    if kind == "same":
        path = outs[1 - victim]
    if kind != "ok":
        outs[victim] = path
    return Case("outputs", index, ["optimize", "m.param", "m.bin", *outs], files, setup, outputs=outs,
                models=[(outs[0], outs[1])], note=kind)


GENERATORS: dict[str, Callable[[random.Random, int, Base], Case]] = {
    "param": gen_param, "param-int8": gen_param_int8, "param.bin": gen_param_bin, "bin": gen_bin, "table": gen_table,
    "prototxt": gen_prototxt,
    "caffemodel": gen_caffemodel, "onnx": gen_onnx, "image": gen_image, "list": gen_list, "options": gen_options,
    "outputs": gen_outputs,
}
"""Every input class and its case generator."""


def make_case(seed: int, index: int, base: Base, classes: tuple[str, ...] = tuple(GENERATORS)) -> Case:
    """Case ``index`` of the campaign ``seed``: classes in turn, the mutation drawn from ``(seed, index)``."""
    rng = random.Random(f"{seed}:{index}")
    cls = classes[index % len(classes)]
    return GENERATORS[cls](rng, index, base)
