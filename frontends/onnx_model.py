"""Reading an ``.onnx`` file safely: parse, check opset, load external data, fix the input shapes.

External tensor data is read only from files inside the model's own folder: a ``location`` that is
absolute, climbs out with ``..`` or resolves (through links) outside the folder is refused, so a
model cannot make ncnnc read arbitrary files.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ncnnc.core.errors import ModelFormatError, UnsupportedError

MIN_OPSET = 9
MAX_OPSET = 21
UPGRADE_OPSET = 13
"""Models older than :data:`MIN_OPSET` are upgraded to this opset with ``onnx.version_converter``."""


def read_model(path: str | Path) -> onnx.ModelProto:
    """Parse an ONNX file and prepare it: opset upgraded, external data loaded, initializers made constants.

    Opsets before :data:`MIN_OPSET` are upgraded; initializers listed as graph inputs are constants.
    """
    path = Path(path)
    from ncnnc.core.fileio import read_input

    raw = read_input(path)
    try:
        model = onnx.load_model_from_string(raw)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"not an ONNX model (protobuf parse failed: {e})", str(path)) from None
    if model.ir_version <= 0 or not model.graph.node or not model.graph.output:
        raise ModelFormatError("not an ONNX model (no IR version, nodes or outputs)", str(path))
    opset = model_opset(model, str(path))
    if 1 <= opset < MIN_OPSET:
        model = _upgrade(model, opset, str(path))
        opset = model_opset(model, str(path))
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedError(f"ONNX opset {opset} is not supported (supported: {MIN_OPSET} to {MAX_OPSET})",
                               str(path))
    _load_external_data(model, path)
    check_tensors(model, str(path))
    check_arity(model, opset, str(path))
    _initializers_as_constants(model)
    return model


def check_tensors(model: onnx.ModelProto, path: str) -> None:
    """Every initializer and Constant tensor must have a known data type and as many values as its dims say."""
    from onnx import helper

    tensors = [(t, f"initializer {t.name!r}") for t in model.graph.initializer]
    tensors += [(a.t, f"Constant node {n.name or n.output[0]!r}") for n in model.graph.node
                for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    for t, what in tensors:
        try:
            dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
        except (KeyError, ValueError, TypeError):
            raise ModelFormatError(f"{what} has unknown data type {t.data_type}", path) from None
        if any(d < 0 for d in t.dims):
            raise ModelFormatError(f"{what} has negative dims {list(t.dims)}", path)
        count = 1
        for d in t.dims:
            count *= d
        if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type == onnx.TensorProto.STRING:
            continue
        have = _stored_count(t, dtype.itemsize)
        if have is not None and have != count:
            raise ModelFormatError(f"{what} has dims {list(t.dims)} ({count} values) but stores {have}", path)


def check_arity(model: onnx.ModelProto, opset: int, path: str) -> None:
    """Every standard node has as many inputs and outputs as its operator's ONNX schema allows, and
    the attributes the schema requires.

    Operators the schema does not know are left to the converter (which names them as unsupported).
    """
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
        except onnx.defs.SchemaError:
            continue
        label = f"node {node.name or index} ({node.op_type})"
        if not schema.min_input <= len(node.input) <= schema.max_input:
            raise ModelFormatError(f"{label} has {len(node.input)} inputs; {node.op_type} takes "
                                   f"{schema.min_input} to {schema.max_input}", path)
        if not schema.min_output <= len(node.output) <= schema.max_output:
            raise ModelFormatError(f"{label} has {len(node.output)} outputs; {node.op_type} gives "
                                   f"{schema.min_output} to {schema.max_output}", path)
        given = {a.name for a in node.attribute}
        missing = sorted(name for name, a in schema.attributes.items() if a.required and name not in given)
        if missing:
            raise ModelFormatError(f"{label} lacks the required attribute {', '.join(missing)}", path)


def _stored_count(t: onnx.TensorProto, itemsize: int) -> int | None:
    """How many values a tensor's data holds (None when its storage field cannot say)."""
    if t.raw_data:
        bits = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}.get(t.data_type)
        return len(t.raw_data) * 8 // bits if bits else len(t.raw_data) // max(itemsize, 1)
    for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
        values = getattr(t, field)
        if len(values):
            complex_type = t.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128)
            return len(values) // 2 if complex_type else len(values)
    return 0


def _initializers_as_constants(model: onnx.ModelProto) -> None:
    """Drop graph inputs that name an initializer: their values are the model's weights, not inputs.

    Exports for IR version < 4 must list every initializer as an input; later versions allow it as
    an overridable default.  Either way ncnn models carry the value, so it is a constant; the IR
    version is raised to 4, the first that lets initializers stand alone.
    """
    init = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.input if vi.name not in init]
    if len(kept) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(kept)
    model.ir_version = max(model.ir_version, 4)


def _upgrade(model: onnx.ModelProto, opset: int, path: str) -> onnx.ModelProto:
    """The model converted from an old opset to :data:`UPGRADE_OPSET` by ONNX's own version converter."""
    from onnx import version_converter

    # the converter reads initializers only through graph inputs (IR < 4 style): list them there
    listed = {vi.name for vi in model.graph.input}
    for t in model.graph.initializer:
        if t.name not in listed:
            model.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    try:
        return version_converter.convert_version(model, UPGRADE_OPSET)
    except Exception as e:  # the converter raises RuntimeError / ValidationError / anything from an adapter
        raise UnsupportedError(f"cannot upgrade ONNX opset {opset} to {UPGRADE_OPSET} "
                               f"(onnx.version_converter: {str(e).splitlines()[0] if str(e) else type(e).__name__})",
                               path) from None


def model_opset(model: onnx.ModelProto, path: str) -> int:
    """The version of the default (``ai.onnx``) operator set the model imports."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ModelFormatError("the model imports no version of the default ONNX operator set", path)


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                tensors.append(attr.t)
            tensors.extend(attr.tensors)
    return [t for t in tensors if external_data_helper.uses_external_data(t)]


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    folder = path.resolve().parent
    for tensor in _external_tensors(model):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor {tensor.name}"
        if not location:
            raise ModelFormatError("external data without a location", str(path), where)
        parts = Path(location).parts
        if os.path.isabs(location) or Path(location).is_absolute() or ".." in parts or "\\" in location:
            raise ModelFormatError(f"external data location {location!r} leaves the model's folder "
                                   "(only files next to the model are read)", str(path), where)
        target = (folder / location).resolve()
        if folder not in target.parents:
            raise ModelFormatError(f"external data location {location!r} resolves outside the model's folder",
                                   str(path), where)
        if not target.is_file():
            raise ModelFormatError(f"external data file {location!r} is missing", str(path), where)
        try:
            external_data_helper.load_external_data_for_tensor(tensor, str(folder))
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"cannot read external data {location!r}: {e}", str(path), where) from None
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def parse_shape(shape: str | Sequence[int]) -> tuple[int, ...]:
    """A ``shape=`` option (``"[227,227,3]"`` or a sequence, ncnn's ``w,h,c`` order) as an NCHW shape.

    ``[w]`` gives ``(1, w)``, ``[w, h]`` gives ``(1, h, w)``, ``[w, h, c]`` gives ``(1, c, h, w)``.
    """
    values = shape
    if isinstance(shape, str):
        text = shape.strip()
        if not text.startswith(("[", "(")):
            text = f"[{text}]"
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ModelFormatError(f"shape {shape!r} is not a list of integers like [227,227,3]") from None
    if isinstance(values, int):
        values = [values]
    dims = list(values)  # type: ignore[arg-type]
    if not 1 <= len(dims) <= 4 or not all(isinstance(d, int) and d > 0 for d in dims):
        raise ModelFormatError(f"shape {shape!r} must be 1 to 4 positive integers in w,h,c order")
    return (1, *reversed(dims))


INPUT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.INT32}
"""Element types an input may have: ncnn blobs are float32 (integers are accepted as indices)."""


def _check_input_type(vi: onnx.ValueInfoProto, path: str) -> None:
    where = f"input {vi.name}"
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsupportedError(f"the input is a {kind or 'value of no type'}, not a tensor: ncnn blobs are tensors",
                               path, where)
    elem = vi.type.tensor_type.elem_type
    if elem not in INPUT_TYPES:
        name = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else str(elem)
        raise UnsupportedError(f"the input's element type is {name}: ncnn blobs are float32 (inputs must be "
                               "float, or integer indices)", path, where)


def fix_input_shapes(model: onnx.ModelProto, path: str, shape: str | Sequence[int] | None) -> dict[str, tuple]:
    """Make every graph input's shape static, using ``shape`` for the unknown dims (a dynamic batch is 1).

    Returns ``{input name: NCHW shape}``; the model's input types are rewritten to match.  A fixed
    batch N > 1 stays: :mod:`~ncnnc.frontends.onnx_batch` decides whether it converts at batch 1.
    """
    init_names = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    given = parse_shape(shape) if shape is not None else None
    if given is not None and len(inputs) != 1:
        raise ModelFormatError(f"shape= fixes the input of a one-input model; this one has {len(inputs)} inputs",
                               path)
    result: dict[str, tuple] = {}
    for vi in inputs:
        where = f"input {vi.name}"
        _check_input_type(vi, path)
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            if given is None:
                raise ModelFormatError("the input has no shape; give one with shape=[w,h,c]", path, where)
            dims: list[int | None] = [None] * len(given)
        else:
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                    for d in vi.type.tensor_type.shape.dim]
        if dims and dims[0] is None:
            dims[0] = 1
        if given is not None:
            if len(given) != len(dims):
                raise ModelFormatError(f"shape= gives {len(given) - 1} dims but the input has rank {len(dims)} "
                                       f"(NCHW with batch)", path, where)
            for known, want in zip(dims, given):
                if known is not None and known != want:
                    raise ModelFormatError(f"shape= {list(reversed(given[1:]))} (w,h,c) contradicts the "
                                           f"model's fixed input shape {dims}", path, where)
            dims = list(given)
        if any(d is None for d in dims):
            shown = ["?" if d is None else d for d in dims]
            raise ModelFormatError(f"the input shape {shown} is dynamic; give a fixed one with shape=[w,h,c]",
                                   path, where)
        tensor_type = vi.type.tensor_type
        tensor_type.ClearField("shape")
        for d in dims:
            tensor_type.shape.dim.add().dim_value = int(d)  # type: ignore[arg-type]
        result[vi.name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
    return result
