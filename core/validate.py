"""What the ncnn runtime accepts: one check of a graph against ncnn's own loading rules.

Every model ncnnc reads is checked here (with the ``.param`` line of each layer when known), and so
is every model before it is written, so ncnnc never writes a ``.param`` that ncnn's ``Net::load_param``
refuses.  The rules are ncnn's (``src/paramdict.cpp``, ``src/net.cpp``, each layer's ``load_param``):

- a known layer type (ncnn's built-in list or a registered schema) that ncnn's default build includes
  (not :data:`~ncnnc.core.layer_type_index.NOT_BUILT`), one input and one output for
  the types ncnn runs as ``one_blob_only`` (:data:`~ncnnc.core.layer_type_index.ONE_BLOB_ONLY`),
  names of 1-255 characters
  without white space, every blob produced once and consumed by at most one layer (ncnn keeps one
  consumer per blob; a second reader needs a ``Split``);
- param ids 0-31 (``NCNN_MAX_PARAM_COUNT``), integers within int32, finite float32 values, value
  text of at most 15 characters (ncnn scans ``%15[^,\\n ]``), strings of at most 255 bytes, and the
  ``30=`` shape hints well formed;
- against the layer type's schema: array or scalar as declared, integer params holding integers,
  float params holding floats (ncnn reads the other kind's bits), strides, dilations and groups of
  at least 1, kernels of at least 1 (unless the layer pools globally or adaptively), sizes and counts
  not negative, the weights' element counts not negative, and the type's own ``check``.

Type-specific rules live with each type's schema (:attr:`~ncnnc.core.params.LayerSchema.check`), so a
layer type added later is covered by the generic rules without touching this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from ncnnc.core.errors import ModelFormatError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.layer_type_index import NOT_BUILT, ONE_BLOB_ONLY, TYPE_INDEX
from ncnnc.core.params import LayerSchema, ParamSpec, get_schema

MAX_PARAM_ID = 31
"""ncnn's ``NCNN_MAX_PARAM_COUNT`` is 32: ids 0-31."""
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_NAME = 255
"""ncnn scans layer types, layer names and blob names with ``%255s``."""
MAX_STRING = 255
MAX_VALUE_TEXT = 15
"""ncnn scans one value with ``%15[^,\\n ]``: longer text is cut and the rest misread."""
SHAPE_HINTS = 30
FEATURE_MASK = 31
"""ncnn reserves ``30=`` (output shape hints, an integer array) and ``31=`` (the feature mask, an integer)."""

_AT_LEAST_ONE = re.compile(r"^(stride|dilation)(_[whd])?$|^group$")
_KERNEL = re.compile(r"^kernel(_[whd])?$")
_NOT_NEGATIVE = re.compile(r"(^|_)(size|count|num_output|channels|hidden_size|embed_dim|num_heads)$")


def validate_graph(graph: Graph, path: str | None = None, places: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ModelFormatError` naming ``path`` and the layer's place if ncnn would refuse the graph.

    ``places`` maps layer names to a place (``line 12``); by default the layer's name is used.
    """
    places = places or {}
    if not graph.layers:
        raise ModelFormatError("the model has no layers", path)
    produced: set[str] = set()
    consumed: dict[str, str] = {}
    for layer in graph.layers:
        where = places.get(layer.name) or f"layer {layer.name}"
        problem = layer_problem(layer, produced, consumed)
        if problem:
            raise ModelFormatError(problem, path, where)
        produced.update(layer.outputs)
        consumed.update((b, layer.name) for b in layer.inputs)  # one layer may read a blob twice (x + x)


def layer_problem(layer: Layer, produced: set[str] | None = None, consumed: dict[str, str] | None = None) -> str | None:
    """The first reason ncnn would refuse this layer, or None.

    ``produced``/``consumed`` are the blobs earlier layers produce and read (checked when given).
    """
    schema = get_schema(layer.type)
    if layer.type not in TYPE_INDEX and schema is None:
        from ncnnc.core.custom_layers import missing_plugin

        return (f"unknown layer type {_show(layer.type)} (neither ncnn's nor a registered plugin's)"
                + missing_plugin(layer.type))
    if layer.type in NOT_BUILT:
        return f"layer type {layer.type} is not in ncnn's default build (the ncnn runtime cannot load it)"
    for what, name in (("layer type", layer.type), ("layer name", layer.name),
                       *(("blob name", b) for b in layer.inputs + layer.outputs)):
        problem = _name_problem(what, name)
        if problem:
            return problem
    if produced is not None and consumed is not None:
        for b in layer.inputs:
            if b not in produced:
                return f"reads blob {_show(b)} that no earlier layer produces"
            if b in consumed:
                return (f"reads blob {_show(b)} that layer {consumed[b]} reads too "
                        "(ncnn needs a Split for a blob with two readers)")
        for b in layer.outputs:
            if b in produced:
                return f"produces blob {_show(b)} a second time"
        if len(set(layer.outputs)) != len(layer.outputs):
            return "lists the same output blob twice"
    if layer.type in ("Input", "MemoryData") and layer.inputs:
        return f"an {layer.type} layer reads no blobs"
    problem = params_problem(layer, schema)
    if problem:
        return problem
    one_blob = ONE_BLOB_ONLY.get(layer.type)
    if one_blob is not None and one_blob(layer.params) and (len(layer.inputs), len(layer.outputs)) != (1, 1):
        return (f"a {layer.type} layer with these params takes one input and gives one output, not "
                f"{len(layer.inputs)} and {len(layer.outputs)}")
    return None


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _name_problem(what: str, name: str) -> str | None:
    if not name:
        return f"empty {what}"
    if len(name.encode()) > MAX_NAME:
        return f"{what} {_show(name)} is longer than {MAX_NAME} bytes"
    if any(ch.isspace() for ch in name) or "\0" in name:
        return f"{what} {_show(name)} contains white space"
    return None


def params_problem(layer: Layer, schema: LayerSchema | None = None) -> str | None:
    """The first param of ``layer`` ncnn would refuse or misread, or None."""
    schema = schema if schema is not None else get_schema(layer.type)
    for pid, value in layer.params.items():
        spec = schema.by_id.get(pid) if schema else None
        label = f"param {pid}" + (f" ({spec.name})" if spec else "")
        if not isinstance(pid, int) or not 0 <= pid <= MAX_PARAM_ID:
            return f"param id {pid} is outside ncnn's range 0-{MAX_PARAM_ID}"
        problem = _value_problem(value, spec, pid, len(layer.outputs))
        if problem:
            return f"{label}: {problem}"
    if schema is None:
        return None
    for spec in schema.params:
        value = layer.params[spec.id]
        if isinstance(value, (list, str)):
            continue
        problem = _range_problem(layer, spec, value)
        if problem:
            return f"param {spec.id} ({spec.name}) {problem}"
    if schema.check is not None:
        problem = schema.check(layer.params)
        if problem:
            return problem
    try:
        specs = schema.weight_specs(layer.params)
    except (ArithmeticError, ValueError, KeyError, TypeError, IndexError):
        return "its params do not give a weight size"
    for w in specs:
        if w.count < 1:
            return f"weight {w.name} would have {w.count} values (ncnn refuses to load an empty weight)"
        if w.shape and math.prod(w.shape) != w.count:
            return (f"weight {w.name} of {w.count} values does not split into the params' shape "
                    f"{list(w.shape)} (e.g. weight_data_size not a multiple of num_output x kernel)")
    return None


def _value_problem(value: object, spec: ParamSpec | None, pid: int, outputs: int) -> str | None:
    if pid == FEATURE_MASK and isinstance(value, (str, list, float, bool)):
        return "the feature mask (31=) must be one integer"
    if pid == SHAPE_HINTS and not isinstance(value, list):
        return "the shape hints (30=) must be an integer array"
    if isinstance(value, str):
        if spec is not None and not isinstance(spec.default, str) and not spec.array:
            return f"expected a number, got the text {_show(value)}"
        return f"text longer than {MAX_STRING} bytes" if len(value.encode()) > MAX_STRING else None
    if isinstance(value, (list, tuple)):
        if spec is not None and not spec.array:
            return f"expected one number, got a list of {len(value)}"
        for v in value:
            problem = _number_problem(v, spec.is_float if spec else None)
            if problem:
                return problem
        return _shape_hints_problem(list(value), outputs) if pid == SHAPE_HINTS else None
    if spec is not None and spec.array:
        return "expected a list (an array param), got one number"
    return _number_problem(value, spec.is_float if spec else None)


def _number_problem(value: object, is_float: bool | None) -> str | None:
    """``is_float`` is the schema's kind (None: unknown, either kind is fine)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"{value!r} is not a number"
    if isinstance(value, (float, np.floating)):
        if is_float is False:
            return f"expected an integer, got {value!r} (ncnn reads a float's bits as the integer)"
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            return f"{value!r} is not a finite float32"
        return None
    if not INT32_MIN <= int(value) <= INT32_MAX:
        return f"{value} does not fit in int32"
    # an integer where ncnn reads a float is loaded, as the runtime loads it (a scalar as that number, a large
    # array element as a float's bits); ncnn's own example models write PriorBox steps and Yolov3 masks so
    return None


def _shape_hints_problem(hints: list, outputs: int) -> str | None:
    """ncnn's ``30=`` shape hints: ``outputs`` records of ``dims, w, h, [d,] c``."""
    if not hints:
        return None
    if outputs == 0 or len(hints) % outputs:
        return f"shape hints of {len(hints)} values do not split into {outputs} output(s)"
    step = len(hints) // outputs
    for i in range(0, len(hints), step):
        dims = hints[i]
        if not isinstance(dims, int) or not 0 <= dims <= 4 or step < dims + 1:
            return f"shape hint {hints[i:i + step]} is not dims (0-4) followed by that many sizes"
        if any(not isinstance(v, int) or v < 0 for v in hints[i + 1:i + 1 + dims]):
            return f"shape hint {hints[i:i + step]} has a negative or non-integer size"
    return None


ACTIVATION_PARAMS = {2: 1, 3: 2, 6: 2}
"""Fused activations that need parameters (``fused_activation.h``): leaky ReLU its slope, clip its min and
max, hardswish its alpha and beta."""


def _range_problem(layer: Layer, spec: ParamSpec, value: float | int) -> str | None:
    name = spec.name
    if spec.choices and not spec.choices[0] <= value <= spec.choices[1]:
        return f"is {value}; ncnn accepts {spec.choices[0]} to {spec.choices[1]}"
    schema = layer.params.schema
    need = ACTIVATION_PARAMS.get(int(value), 0) if name == "activation_type" else 0
    if need and schema and "activation_params" in schema.by_name:
        given = layer.params["activation_params"]
        if not isinstance(given, list) or len(given) < need:
            return f"is {value}, which needs {need} activation_params (param {schema.by_name['activation_params'].id})"
    if _AT_LEAST_ONE.match(name) and value < 1:
        return f"is {value}, must be at least 1"
    if _KERNEL.match(name) and value < 1 and not (_flag(layer, "global_pooling") or _flag(layer, "adaptive_pooling")):
        return f"is {value}, must be at least 1"
    if _NOT_NEGATIVE.search(name) and value < 0 and not (name.endswith("_size") and value == -233):
        return f"is {value}, must not be negative"
    return None


def _flag(layer: Layer, name: str) -> bool:
    schema = layer.params.schema
    return bool(schema and name in schema.by_name and layer.params[name])


def _fixed_size(layer: Layer) -> bool:
    """Whether an Input layer gives its whole size (w, h and c positive, none dynamic)."""
    return all(layer.p(k) > 0 for k in ("w", "h", "c"))


def check_weights_fit(graph: Graph, path: str | None = None) -> None:
    """For a graph whose input sizes are known: every Convolution's weights must fit its input's channels,
    and (at a fixed input size) every Convolution's and Pooling's window its padded input.

    ncnn loads a model whose weight count does not match its input (it reads past the weights at run
    time), so this is checked here, where shape inference can say which layer is wrong.
    """
    from ncnnc.core.errors import NcnncError
    from ncnnc.core.resources import ResourceError
    from ncnnc.core.shapes import WindowError, infer_shapes

    saved = graph.shapes
    try:
        shapes = infer_shapes(graph)
    except ResourceError:
        raise
    except WindowError as e:  # a window larger than its input, at the model's own fixed input size
        if all(_fixed_size(layer) for layer in graph.layers if layer.type == "Input"):
            raise ModelFormatError(e.message, path, e.where) from None
        return
    except NcnncError:
        return  # sizes not known before the input is given
    finally:
        graph.shapes = saved
    for layer in graph.layers:
        if layer.type not in ("Convolution", "ConvolutionDepthWise") or "weight" not in layer.weights:
            continue
        shape = shapes.get(layer.inputs[0], ()) if layer.inputs else ()
        if len(shape) != 3:
            continue
        group = layer.p("group") if layer.type == "ConvolutionDepthWise" else 1
        need = shape[0] * layer.p("num_output") * layer.p("kernel_w") * layer.p("kernel_h")
        if need != layer.p("weight_data_size") * group:
            raise ModelFormatError(f"weight_data_size {layer.p('weight_data_size')} does not fit the input's "
                                   f"{shape[0]} channels (expected {need // group})", path, f"layer {layer.name}")
