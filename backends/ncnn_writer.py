"""The ncnn backend: writes a graph as ``.param`` (text or ncnn2mem's binary form) and ``.bin``.

Weights are written in the storage each :class:`~ncnnc.core.ir.Weight` carries; load-type-1 blobs
(biases, scales ...) are always raw fp32, as ncnn reads them.  :func:`convert_storage` changes the
storage of every tagged float weight (fp16 as ``ncnnoptimize ... 65536`` writes it).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from ncnnc.core.backend import Backend
from ncnnc.core.errors import GraphError
from ncnnc.core.fileio import atomic_outputs
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer, Weight, with_splits
from ncnnc.core.layer_type_index import TYPE_INDEX
from ncnnc.core.params import ParamValue, get_schema
from ncnnc.core.validate import validate_graph

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38


def format_float(value: float) -> str:
    """A float as ncnn's param parser reads it back: shortest float32 text, always with '.' or 'e'."""
    text = np.format_float_positional(np.float32(value), unique=True, trim="0")
    if len(text) > 15:
        text = np.format_float_scientific(np.float32(value), unique=True, trim="0", exp_digits=2)
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text


def _format_value(value: ParamValue) -> str:
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    return str(int(value))


def format_layer_line(layer: Layer) -> str:
    """One layer as a text ``.param`` line."""
    parts = [f"{layer.type:<24} {layer.name:<24} {len(layer.inputs)} {len(layer.outputs)}"]
    parts += layer.inputs + layer.outputs
    for pid, value in layer.params.items():
        if isinstance(value, list):
            parts.append(f"{-23300 - pid}=" + ",".join([str(len(value)), *map(_format_value, value)]))
        elif isinstance(value, str):
            parts.append(f'{pid}="{value}"')
        else:
            parts.append(f"{pid}={_format_value(value)}")
    return " ".join(parts)


def param_text(graph: Graph) -> str:
    """The whole text ``.param`` file (a graph ncnn would refuse to load is an error, never written; a blob
    with several readers gets the Split ncnn expects)."""
    graph = with_splits(graph)
    validate_graph(graph)
    lines = [str(MAGIC), f"{len(graph.layers)} {len(graph.blobs)}"]
    lines += [format_layer_line(layer) for layer in graph.layers]
    return "\n".join(lines) + "\n"


def param_bin(graph: Graph) -> bytes:
    """The binary ``.param.bin`` form (ncnn2mem): layer type indices and blob indices."""
    graph = with_splits(graph)
    validate_graph(graph)
    blob_index = {b: i for i, b in enumerate(graph.blobs)}
    out = io.BytesIO()
    out.write(struct.pack("<iii", MAGIC, len(graph.layers), len(blob_index)))
    for layer in graph.layers:
        if layer.type not in TYPE_INDEX:
            raise GraphError(f"layer type {layer.type} has no ncnn type index for .param.bin",
                             where=f"layer {layer.name}")
        out.write(struct.pack("<iii", TYPE_INDEX[layer.type], len(layer.inputs), len(layer.outputs)))
        for b in layer.inputs + layer.outputs:
            out.write(struct.pack("<i", blob_index[b]))
        schema = get_schema(layer.type)
        for pid, value in layer.params.items():
            spec = schema.by_id.get(pid) if schema else None
            if isinstance(value, str):
                raw = value.encode()
                out.write(struct.pack("<ii", -23400 - pid, len(raw)) + _pad4(raw))
            elif isinstance(value, list):
                is_float = any(isinstance(v, float) for v in value) or bool(spec and spec.is_float)
                out.write(struct.pack("<ii", -23300 - pid, len(value)))
                out.write(np.asarray(value, "<f4" if is_float else "<i4").tobytes())
            else:
                is_float = isinstance(value, float)
                out.write(struct.pack("<i", pid) + struct.pack("<f" if is_float else "<i", value))
        out.write(struct.pack("<i", -233))
    return out.getvalue()


def _pad4(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 4)


def weight_bytes(weight: Weight, load_type: int) -> bytes:
    """The bytes of one weight blob as ncnn's model loader expects them."""
    if load_type == 1:
        return weight.as_float().astype("<f4").tobytes()
    if weight.storage in ("fp32", "raw"):
        return struct.pack("<I", weight.tag if weight.storage == "fp32" else 0) + \
            weight.data.astype("<f4").tobytes()
    if weight.storage == "fp16":
        return struct.pack("<I", TAG_FP16) + _pad4(weight.data.astype("<f2").tobytes())
    if weight.storage == "int8":
        return struct.pack("<I", TAG_INT8) + _pad4(weight.data.astype(np.int8).tobytes())
    assert weight.codebook is not None and weight.indices is not None
    return (struct.pack("<I", weight.tag) + weight.codebook.astype("<f4").tobytes()
            + _pad4(weight.indices.astype(np.uint8).tobytes()))


def bin_bytes(graph: Graph) -> bytes:
    """The whole ``.bin`` file: every layer's weights in layer order."""
    out = io.BytesIO()
    for layer in graph.layers:
        for spec in layer.weight_specs():
            weight = layer.weights.get(spec.name)
            if weight is None:
                raise GraphError(f"missing weight {spec.name!r}", where=f"layer {layer.name}")
            if weight.data.size != spec.count:
                raise GraphError(f"weight {spec.name!r} has {weight.data.size} values, params say {spec.count}",
                                 where=f"layer {layer.name}")
            out.write(weight_bytes(weight, spec.load_type))
    return out.getvalue()


def convert_storage(graph: Graph, storage: str) -> int:
    """Store every tagged float weight (load type 0) as ``fp16`` or ``fp32``; returns how many changed.

    int8 and codebook weights are left as they are.
    """
    changed = 0
    for layer in graph.layers:
        for spec in layer.weight_specs():
            w = layer.weights.get(spec.name)
            if spec.load_type != 0 or w is None or w.storage not in ("fp32", "fp16", "raw"):
                continue
            if w.storage != storage:
                w.data = w.as_float() if storage == "fp32" else w.data.astype(np.float16).astype(np.float32)
                w.storage, w.tag = storage, 0
                changed += 1
    return changed


def save(graph: Graph, param_path: str | Path, bin_path: str | Path | None = None,
         binary_param: bool | None = None) -> None:
    """Write the model atomically.  ``binary_param`` defaults to True for a ``.param.bin`` name."""
    param_path = Path(param_path)
    if binary_param is None:
        binary_param = param_path.name.endswith(".param.bin")
    param_data = param_bin(graph) if binary_param else param_text(graph).encode()
    bin_data = bin_bytes(graph) if bin_path is not None else None
    paths = [param_path] + ([Path(bin_path)] if bin_path is not None else [])
    with atomic_outputs(*paths) as temps:
        temps[0].write_bytes(param_data)
        if bin_data is not None:
            temps[1].write_bytes(bin_data)


@hookimpl
def ncnnc_backends() -> list[Backend]:
    """The ncnn model writer."""
    return [Backend("ncnn", "writes ncnn .param/.param.bin + .bin (fp32, fp16, int8 storage)", "writer", save)]
