"""The ncnn frontend: text ``.param``, binary ``.param.bin`` (ncnn2mem) and ``.bin`` weights.

``.bin`` blobs are read exactly as ncnn's ``ModelBinFromDataReader`` reads them: a load-type-0
blob starts with a 4-byte tag (``0`` fp32, ``0x01306B47`` fp16, ``0x000D4B38`` int8, another
non-zero tag a 256-entry float codebook followed by byte indices), a load-type-1 blob is raw fp32.
The storage found is remembered on each :class:`~ncnnc.core.ir.Weight` so the model writes back
byte for byte.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ncnnc.core.errors import ModelFormatError
from ncnnc.core.fileio import read_input
from ncnnc.core.frontend import Frontend
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.layer_type_index import LAYER_TYPE_ORDER
from ncnnc.core.params import ParamDict, ParamValue, get_schema
from ncnnc.core.validate import MAX_VALUE_TEXT, validate_graph

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056


def load(param_path: str | Path, bin_path: str | Path | None = None) -> Graph:
    """Read an ncnn model: ``.param`` (text) or ``.param.bin`` (binary), plus the ``.bin`` if given."""
    param_path = Path(param_path)
    raw = read_input(param_path)
    if raw[:4] == struct.pack("<i", MAGIC):
        graph = parse_param_bin(raw, str(param_path))
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError("not a text .param file (and not ncnn2mem's binary form)",
                                   str(param_path)) from None
        graph = parse_param(text, str(param_path))
    graph.name = param_path.stem
    if bin_path is not None:
        bin_path = Path(bin_path)
        data = read_input(bin_path)
        read_weights(graph, data, str(bin_path))
    return graph


# -- text .param ------------------------------------------------------------------------------
def _parse_scalar(text: str, path: str, where: str) -> int | float:
    if len(text) > MAX_VALUE_TEXT:
        raise ModelFormatError(f"param value {text[:20]!r}... is longer than {MAX_VALUE_TEXT} characters "
                               "(ncnn reads at most 15)", path, where)
    try:
        if any(ch in text for ch in ".eE") and not text.lstrip("-+").isdigit():
            return float(text)
        return int(text)
    except ValueError:
        raise ModelFormatError(f"param value {text!r} is not a number", path, where) from None


def parse_param_value(key: str, value: str, path: str, where: str) -> tuple[int, ParamValue]:
    """Parse one ``id=value`` pair of a text ``.param`` line into ``(id, value)``.

    As ncnn's parser: ``-233xx=n,v0,v1..`` is an array, so is ``id=v0,v1,..`` (the newer form); a
    value starting with a letter or a double quote is a string (quotes removed).
    """
    try:
        pid = int(key)
    except ValueError:
        raise ModelFormatError(f"param id {key!r} is not an integer", path, where) from None
    if pid <= -23300:
        items = value.split(",")
        count = _parse_scalar(items[0], path, where)
        values = [_parse_scalar(v, path, where) for v in items[1:] if v != ""]
        if not isinstance(count, int) or count != len(values):
            raise ModelFormatError(f"array param {key} declares {items[0]} values but has {len(values)}",
                                   path, where)
        return -pid - 23300, values
    if value[:1] == '"' or value[:1].isalpha():
        return pid, value[1:-1] if value[:1] == '"' and value.endswith('"') and len(value) > 1 else value
    if "," in value:
        return pid, [_parse_scalar(v, path, where) for v in value.split(",") if v != ""]
    return pid, _parse_scalar(value, path, where)


_PARAM = re.compile(r'(\S+?)=("[^"\n]*"|\S*)|(\S+)')
"""One ``id=value`` pair (a double-quoted value may hold spaces), or a malformed word."""


def _unique_layer_names(layers: list[Layer]) -> None:
    """Rename the second and later layers of a repeated name ``n`` to ``n_1``, ``n_2`` ...: the ncnn
    runtime does not care (mobilenetv2_ssdlite has ten layers named ``slice``), ncnnc finds layers by name."""
    used = {layer.name for layer in layers}
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            i = 1
            while f"{layer.name}_{i}" in used:
                i += 1
            layer.name = f"{layer.name}_{i}"
            used.add(layer.name)
        seen.add(layer.name)


def parse_param(text: str, path: str = "<param>") -> Graph:
    """Parse the text form of a ``.param`` file into a graph (weights not loaded)."""
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise ModelFormatError("empty file", path)
    lineno, first = lines[0]
    if first.strip() != str(MAGIC):
        raise ModelFormatError(f"wrong magic number {first.strip()!r} (expected {MAGIC})", path, f"line {lineno}")
    if len(lines) < 2:
        raise ModelFormatError("missing the layer and blob counts", path, "line 2")
    lineno, counts = lines[1]
    try:
        layer_count, blob_count = (int(v) for v in counts.split())
    except ValueError:
        raise ModelFormatError(f"bad layer/blob count line {counts.strip()!r}", path, f"line {lineno}") from None
    body = lines[2:]
    if len(body) != layer_count:
        raise ModelFormatError(f"header declares {layer_count} layers but the file has {len(body)}",
                               path, f"line {lines[1][0]}")
    layers = []
    for lineno, line in body:
        where = f"line {lineno}"
        tokens = line.split()
        if len(tokens) < 4:
            raise ModelFormatError("a layer line needs type, name, input count and output count", path, where)
        ltype, name = tokens[0], tokens[1]
        try:
            nin, nout = int(tokens[2]), int(tokens[3])
        except ValueError:
            raise ModelFormatError("input/output counts are not integers", path, where) from None
        if nin < 0 or nout < 0:
            raise ModelFormatError(f"negative input/output count {nin} {nout}", path, where)
        if len(tokens) < 4 + nin + nout:
            raise ModelFormatError(f"layer {name} declares {nin} inputs and {nout} outputs "
                                   f"but lists fewer blobs", path, where)
        inputs = tokens[4:4 + nin]
        outputs = tokens[4 + nin:4 + nin + nout]
        params = ParamDict(ltype)
        rest = line.split(None, 4 + nin + nout)[4 + nin + nout:]
        for match in _PARAM.finditer(rest[0] if rest else ""):
            key, value, bad = match.groups()
            if bad is not None:
                raise ModelFormatError(f"param {bad!r} is not of the form id=value", path, where)
            pid, val = parse_param_value(key, value, path, where)
            schema = params.schema
            if isinstance(val, str) and schema is not None and pid in schema.by_id:
                raise ModelFormatError(f"param value {value!r} is not a number", path, where)
            params.values[pid] = val
        layers.append(Layer(ltype, name, inputs, outputs, params))
    _unique_layer_names(layers)
    graph = Graph(layers)
    places = {layer.name: f"line {ln}" for layer, (ln, _) in zip(layers, body)}
    _check_blobs(graph, blob_count, path, places)
    validate_graph(graph, path, places)
    return graph


def _check_blobs(graph: Graph, blob_count: int, path: str, places: dict[str, str]) -> None:
    produced: dict[str, str] = {}
    for layer in graph.layers:
        where = places.get(layer.name, f"layer {layer.name}")
        for b in layer.inputs:
            if b not in produced:
                raise ModelFormatError(f"layer {layer.name} reads blob {b!r} that no earlier layer produces",
                                       path, where)
        for b in layer.outputs:
            if b in produced:
                raise ModelFormatError(f"blob {b!r} is produced twice (first by {produced[b]})", path, where)
            produced[b] = layer.name
    if len(produced) != blob_count:
        raise ModelFormatError(f"header declares {blob_count} blobs but the layers produce {len(produced)}",
                               path, "line 2")


# -- binary .param.bin ------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data, self.pos, self.path = data, 0, path

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str, where: str) -> bytes:
        """The next ``n`` bytes; reading only ever moves forward (a negative length is an error)."""
        if n < 0:
            raise ModelFormatError(f"negative length {n} for {what}", self.path, where)
        if self.pos + n > len(self.data):
            raise ModelFormatError(f"truncated: {what} needs {n} bytes, {self.remaining()} left", self.path, where)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int32(self, what: str, where: str) -> int:
        return struct.unpack("<i", self.take(4, what, where))[0]


def parse_param_bin(data: bytes, path: str = "<param.bin>") -> Graph:
    """Parse ncnn2mem's binary ``.param.bin``; blobs are named by index, layers by type and index."""
    r = _Reader(data, path)
    if r.int32("magic", "header") != MAGIC:
        raise ModelFormatError("wrong magic number", path, "header")
    layer_count = r.int32("layer count", "header")
    blob_count = r.int32("blob count", "header")
    if layer_count < 0 or blob_count < 0:
        raise ModelFormatError("negative layer or blob count", path, "header")
    layers = []
    for i in range(layer_count):
        where = f"layer #{i}"
        type_index = r.int32("layer type", where)
        if not 0 <= type_index < len(LAYER_TYPE_ORDER):
            raise ModelFormatError(f"unknown layer type index {type_index}", path, where)
        ltype = LAYER_TYPE_ORDER[type_index]
        nin, nout = r.int32("input count", where), r.int32("output count", where)
        if not 0 <= nin <= r.remaining() // 4 or not 0 <= nout <= r.remaining() // 4:
            raise ModelFormatError(f"impossible blob counts {nin} in, {nout} out", path, where)
        inputs = [f"blob{r.int32('input blob index', where)}" for _ in range(nin)]
        outputs = [f"blob{r.int32('output blob index', where)}" for _ in range(nout)]
        params = ParamDict(ltype)
        schema = get_schema(ltype)
        while True:
            pid = r.int32("param id", where)
            if pid == -233:
                break
            if pid <= -23400:  # a string: length, then the bytes padded to 4
                n = r.int32("string length", where)
                if not 0 <= n <= 255:
                    raise ModelFormatError(f"string param of length {n}", path, where)
                raw = r.take((n + 3) // 4 * 4, "string value", where)
                params.values[-pid - 23400] = raw.split(b"\0")[0].decode("utf-8", "replace")
                continue
            real = -pid - 23300 if pid <= -23300 else pid
            spec = schema.by_id.get(real) if schema else None
            is_float = bool(spec and spec.is_float)
            if pid <= -23300:
                n = r.int32("array length", where)
                if n < 0:
                    raise ModelFormatError(f"array param {real} has a negative length {n}", path, where)
                raw = r.take(4 * n, "array values", where)
                params.values[real] = np.frombuffer(raw, "<f4" if is_float else "<i4").tolist()
            else:
                raw = r.take(4, "param value", where)
                params.values[real] = struct.unpack("<f" if is_float else "<i", raw)[0]
        layers.append(Layer(ltype, f"{ltype.lower()}_{i}", inputs, outputs, params))
    if r.remaining():
        raise ModelFormatError(f"{r.remaining()} trailing bytes after the last layer", path, "end of file")
    graph = Graph(layers)
    _check_blobs(graph, blob_count, path, {})
    validate_graph(graph, path, {layer.name: f"layer #{i} ({layer.type})" for i, layer in enumerate(layers)})
    return graph


# -- .bin weights -----------------------------------------------------------------------------
def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def read_weight(r: _Reader, count: int, load_type: int, where: str) -> Weight:
    """Read one weight blob of ``count`` elements as ncnn's ``ModelBin::load(count, load_type)``."""
    if load_type == 1:
        return Weight(np.frombuffer(r.take(4 * count, "raw fp32 data", where), "<f4").copy(), "raw")
    tag_bytes = r.take(4, "storage tag", where)
    tag = struct.unpack("<I", tag_bytes)[0]
    if tag == TAG_FP16:
        raw = r.take(_align4(2 * count), "fp16 data", where)
        return Weight(np.frombuffer(raw[:2 * count], "<f2").astype(np.float32), "fp16")
    if tag == TAG_INT8:
        raw = r.take(_align4(count), "int8 data", where)
        return Weight(np.frombuffer(raw[:count], np.int8).copy(), "int8")
    if tag == TAG_FP32_SCALED:
        data = np.frombuffer(r.take(4 * count, "fp32 data", where), "<f4").copy()
        return Weight(data, "fp32", tag=tag)
    if sum(tag_bytes) == 0:
        # ncnn reads raw fp32 only when f0 == 0; any other all-zero-sum tag is impossible.
        return Weight(np.frombuffer(r.take(4 * count, "fp32 data", where), "<f4").copy(), "fp32")
    table = np.frombuffer(r.take(256 * 4, "codebook", where), "<f4").copy()
    indices = np.frombuffer(r.take(_align4(count), "codebook indices", where)[:count], np.uint8).copy()
    return Weight(table[indices], "codebook", codebook=table, indices=indices, tag=tag)


def read_weights(graph: Graph, data: bytes, path: str) -> None:
    """Fill every layer's weights from a ``.bin`` file's bytes, in layer order."""
    r = _Reader(data, path)
    for layer in graph.layers:
        schema = get_schema(layer.type)
        if schema is None:
            if r.remaining():
                raise ModelFormatError(f"unknown layer type {layer.type!r}: cannot size its weights",
                                       path, f"layer {layer.name}")
            continue
        for spec in schema.weight_specs(layer.params):
            if spec.count < 0:
                raise ModelFormatError(f"weight {spec.name} has negative size {spec.count}",
                                       path, f"layer {layer.name}")
            weight = read_weight(r, spec.count, spec.load_type, f"layer {layer.name} ({spec.name})")
            if spec.shape and int(np.prod(spec.shape)) == spec.count:
                weight.data = weight.data.reshape(spec.shape)
                if weight.indices is not None:
                    weight.indices = weight.indices.reshape(spec.shape)
            layer.weights[spec.name] = weight
    if r.remaining():
        raise ModelFormatError(f"{r.remaining()} bytes left after the last layer's weights "
                               f"(the .bin does not belong to this .param?)", path, "end of file")


def _claims(paths: list[str]) -> bool:
    return len(paths) in (1, 2) and (paths[0].endswith(".param") or paths[0].endswith(".param.bin"))


def _load(paths: list[str], **_options) -> Graph:
    return load(paths[0], paths[1] if len(paths) > 1 else None)


@hookimpl
def ncnnc_frontends() -> list[Frontend]:
    """The ncnn frontend."""
    return [Frontend("ncnn", "ncnn .param (text or ncnn2mem binary) + .bin, every weight storage",
                     _claims, _load, usage="MODEL.param MODEL.bin")]
