"""Reading Caffe models: a text ``.prototxt`` plus a binary ``.caffemodel`` -> a graph of ncnn layers.

Both files are read with protobuf through the project's own schema (``caffe.proto`` next to this
module; see :mod:`ncnnc.frontends.proto_schema`).  The network comes from the prototxt (the current
``layer`` form or the legacy V1 ``layers`` form, plus the legacy ``input:``/``input_shape``/
``input_dim`` net inputs); weight blobs come from the caffemodel layer of the same name (either
form; ``BlobProto`` with ``shape`` or the legacy num/channels/height/width).

Blobs are named as ncnn's ``caffe2ncnn`` names them, so converted models read like its output:
an in-place layer (top == bottom) writes a new blob ``TOP_LAYERNAME``, and a blob read by several
layers gets a ``Split`` layer ``splitncnn_N`` right after its producer, whose outputs
``BLOB_splitncnn_K`` go to the consumers (the first consumer gets the highest K).  Graph inputs and
outputs keep their Caffe names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf import text_format

from ncnnc.core.errors import GraphError, ModelFormatError, NcnncError, UnsupportedError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.params import ParamDict
from ncnnc.frontends.caffe_layers import CONVERTERS, CaffeLayer, input_params, shape_option_params
from ncnnc.frontends.proto_schema import message_classes

PROTO = Path(__file__).with_name("caffe.proto")

V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
"""V1 ``LayerType`` enum names -> the type strings of the current form (Caffe's upgrade table)."""

TEST_PHASE = 1


@functools.lru_cache(maxsize=1)
def caffe_pb() -> dict[str, type]:
    """The message classes built from ``caffe.proto`` (``caffe_pb()["NetParameter"]``)."""
    return message_classes(PROTO)


# -- reading the two files --------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    from ncnnc.core.fileio import read_input

    return read_input(path)


def read_prototxt(path: str | Path) -> Any:
    """Parse a text prototxt into a ``NetParameter`` (syntax errors name the line)."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ModelFormatError("not a text prototxt (invalid UTF-8)", str(path), f"line {line}") from None
    net = caffe_pb()["NetParameter"]()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        message = re.sub(r"^\d+:\d+ : ", "", str(e)).strip()
        where = f"line {e.GetLine()}" if e.GetLine() else None
        raise ModelFormatError(f"syntax error: {message}", str(path), where) from None
    return net


def read_caffemodel(path: str | Path) -> Any:
    """Parse a binary caffemodel into a ``NetParameter``."""
    path = Path(path)
    raw = _read_bytes(path)
    net = caffe_pb()["NetParameter"]()
    try:
        net.ParseFromString(raw)
    except (pb_message.DecodeError, ValueError, RuntimeError):
        raise ModelFormatError(f"not a valid caffemodel: the protobuf data is truncated or corrupt "
                               f"({len(raw)} bytes)", str(path)) from None
    if not net.layer and not net.layers:
        raise ModelFormatError("the caffemodel holds no layers", str(path))
    return net


def blob_array(blob: Any, path: str, where: str) -> np.ndarray:
    """A ``BlobProto``'s values as float32 in its Caffe shape (``shape`` or num/channels/height/width)."""
    data = np.asarray(blob.data, dtype=np.float32) if len(blob.data) else \
        np.asarray(blob.double_data, dtype=np.float64).astype(np.float32)
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
        shape = (data.size,) if not any(shape) else shape
    if int(np.prod(shape)) != data.size:
        raise ModelFormatError(f"blob shape {list(shape)} does not match its {data.size} values", path, where)
    return data.reshape(shape)


# -- the layer list ---------------------------------------------------------------------------
def _rule_met(rule: Any) -> bool:
    if rule.HasField("phase") and rule.phase != TEST_PHASE:
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage


def _included(layer: Any) -> bool:
    """Caffe's include/exclude rules for a TEST-phase net with no stages at level 0."""
    if layer.include:
        return any(_rule_met(r) for r in layer.include)
    return not any(_rule_met(r) for r in layer.exclude)


def _layer_type(layer: Any, v1: bool) -> str:
    if not v1:
        return layer.type
    enum = type(layer).DESCRIPTOR.enum_types_by_name["LayerType"]
    value = enum.values_by_number.get(layer.type)
    return V1_TYPES.get(value.name, value.name) if value is not None else str(layer.type)


def _net_layers(net: Any) -> list[tuple[Any, str]]:
    """``(message, type)`` for every layer the TEST-phase net runs, legacy inputs first."""
    if net.layer and net.layers:
        raise ModelFormatError("the prototxt mixes 'layer' and legacy 'layers' entries")
    v1 = not net.layer
    return [(layer, _layer_type(layer, v1)) for layer in (net.layers if v1 else net.layer) if _included(layer)]


def _legacy_inputs(net: Any) -> list[Layer]:
    layers = []
    for i, name in enumerate(net.input):
        if i < len(net.input_shape):
            dims = list(net.input_shape[i].dim)
        elif len(net.input_dim) >= 4 * (i + 1):
            dims = list(net.input_dim[4 * i:4 * i + 4])
        else:
            dims = []
        layers.append(Layer("Input", name, [], [name], params=input_params(dims)))
    return layers


def _weight_blobs(model: Any | None) -> dict[str, list[Any]]:
    """Caffemodel blobs by layer name (the first layer of a name wins, as in caffe2ncnn)."""
    blobs: dict[str, list[Any]] = {}
    if model is not None:
        for layer in list(model.layer) + list(model.layers):
            blobs.setdefault(layer.name, list(layer.blobs))
    return blobs


# -- graph assembly ---------------------------------------------------------------------------
class _Names:
    """Unique layer/blob names for layers the converter adds."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name


def convert_net(net: Any, model: Any | None = None, shape: Sequence[int] | None = None,
                prototxt: str = "<prototxt>", caffemodel: str = "<caffemodel>") -> Graph:
    """Turn parsed ``NetParameter`` messages (network, weights) into a graph of ncnn layers."""
    entries = _net_layers(net)
    layers: list[Layer] = _legacy_inputs(net)
    if not entries and not layers:
        raise ModelFormatError("the prototxt defines no layers", prototxt)
    weights = _weight_blobs(model)

    # 1. SSA names: a top that names an existing blob (in-place) becomes TOP_LAYERNAME.
    current = {b: b for layer in layers for b in layer.outputs}
    wired: list[tuple[Any, str, list[str], list[str]]] = []
    for index, (msg, ltype) in enumerate(entries):
        if not msg.name:
            msg.name = f"{ltype.lower()}_{index}"
        bottoms = []
        for b in msg.bottom:
            if b not in current:
                raise ModelFormatError(f"bottom blob {b!r} is not produced by an earlier layer",
                                       prototxt, f"layer {msg.name}")
            bottoms.append(current[b])
        tops = []
        for t in msg.top:
            new = f"{t}_{msg.name}" if t in current else t
            if new in current.values():
                raise ModelFormatError(f"top blob {t!r} cannot be renamed to {new!r}: the name is taken",
                                       prototxt, f"layer {msg.name}")
            current[t] = new
            tops.append(new)
        wired.append((msg, ltype, bottoms, tops))

    # 2. consumers per blob; blobs read more than once are fanned out through Split layers.
    refs: dict[str, int] = {}
    for _, _, bottoms, _ in wired:
        for b in bottoms:
            refs[b] = refs.get(b, 0) + 1
    names = _Names()
    names.used.update(b for _, _, _, tops in wired for b in tops)
    names.used.update(msg.name for msg, _, _, _ in wired)
    names.used.update(layer.name for layer in layers)
    remaining = dict(refs)
    split_count = 0

    def add_splits(blobs: Sequence[str]) -> None:
        nonlocal split_count
        for blob in blobs:
            if refs.get(blob, 0) > 1:
                outs = [f"{blob}_splitncnn_{k}" for k in range(refs[blob])]
                layers.append(Layer("Split", names.fresh(f"splitncnn_{split_count}"), [blob], outs))
                split_count += 1

    add_splits([b for layer in layers for b in layer.outputs])
    for msg, ltype, bottoms, tops in wired:
        inputs = []
        for b in bottoms:
            if refs[b] > 1:
                remaining[b] -= 1
                b = f"{b}_splitncnn_{remaining[b]}"
            inputs.append(b)
        where = f"layer {msg.name}"
        blobs = [blob_array(bp, caffemodel, where) for bp in weights.get(msg.name, [])]
        cl = CaffeLayer(msg.name, ltype, inputs, tops, msg, blobs, names.fresh, caffemodel)
        convert = CONVERTERS.get(ltype)
        if convert is None:
            raise UnsupportedError(f"Caffe layer type {ltype!r} is not supported", prototxt, where)
        try:
            new_layers = convert(cl)
        except NcnncError as e:
            e.path = e.path or prototxt
            raise
        layers.extend(new_layers)
        produced = {b for layer in new_layers for b in layer.outputs}
        add_splits([t for t in tops if t in produced])

    first_input = next((layer for layer in layers if layer.type == "Input"), None)
    if shape and first_input is not None:
        first_input.params = ParamDict("Input", shape_option_params(shape))
    graph = Graph(layers, name=net.name)
    try:
        graph.validate()
    except GraphError as e:
        raise ModelFormatError(e.message, prototxt, e.where) from None
    return graph


def parse_shape(shape: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """A ``shape`` option as ints in ncnn's ``[w,h,c]`` order (``"[227,227,3]"`` or a sequence)."""
    if shape is None or isinstance(shape, (list, tuple)):
        return tuple(int(v) for v in shape) if shape is not None else None
    values = str(shape).strip().strip("[]()")
    try:
        return tuple(int(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise NcnncError(f"shape {shape!r} is not a list of integers such as [227,227,3]") from None


def load(prototxt: str | Path, caffemodel: str | Path | None = None,
         shape: str | Sequence[int] | None = None) -> Graph:
    """Read a Caffe model: the network from ``prototxt``, the weights from ``caffemodel``."""
    net = read_prototxt(prototxt)
    model = read_caffemodel(caffemodel) if caffemodel is not None else None
    graph = convert_net(net, model, parse_shape(shape), str(prototxt), str(caffemodel))
    graph.name = graph.name or Path(prototxt).stem
    return graph
