"""Typed ncnn layer parameters: ids, names, defaults and the per-type schema registry.

An ncnn ``.param`` line stores parameters as ``id=value`` pairs; array parameters use the id
``-23300 - id`` and a ``count,v0,v1,...`` value.  :class:`ParamDict` keeps exactly the explicit
values of one layer (so a model re-written by ncnnc keeps its original parameters) and resolves
every other id through the layer type's :class:`LayerSchema`, which knows ncnn's defaults,
including defaults that refer to another parameter (``kernel_h`` defaults to ``kernel_w``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

ParamValue = int | float | list | str
"""An int, a float, a list of ints/floats (an array parameter) or a string (e.g. Reshape's ``6=`` expression)."""


@dataclass(frozen=True)
class Ref:
    """A default that is the value of another parameter id (``kernel_h`` defaults to ``kernel_w``)."""

    id: int


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a layer type: ncnn id, name, default, and whether it is an array."""

    id: int
    name: str
    default: ParamValue | Ref = 0
    array: bool = False
    choices: tuple[int, int] | None = None
    """``(lowest, highest)`` value ncnn's ``load_param`` accepts for an enumeration (an op or mode), if limited."""

    @property
    def is_float(self) -> bool:
        """Whether values (array elements for arrays) are floats; binary params need to know."""
        if isinstance(self.default, list):
            return bool(self.default) and isinstance(self.default[0], float)
        return isinstance(self.default, float)


@dataclass(frozen=True)
class WeightSpec:
    """One weight blob as ncnn's ``load_model`` reads it.

    ``count`` is the number of elements, ``load_type`` ncnn's ``ModelBin::load`` type: 0 means the
    blob starts with a 4-byte storage tag (fp32/fp16/int8/codebook), 1 means raw fp32 with no tag.
    ``shape`` is the logical numpy shape (C order) the interpreter uses; it must hold ``count``
    elements.
    """

    name: str
    count: int
    load_type: int
    shape: tuple[int, ...] = ()

    def logical_shape(self) -> tuple[int, ...]:
        """The shape to reshape the flat weight to (``(count,)`` when none was given)."""
        return self.shape or (self.count,)


WeightsFn = Callable[["ParamDict"], list[WeightSpec]]
CheckFn = Callable[["ParamDict"], "str | None"]
"""A layer type's own load-time rule (what its ncnn ``load_param`` rejects): a message, or None when fine."""


@dataclass
class LayerSchema:
    """What ncnnc knows of one ncnn layer type: its parameters and the weights it loads."""

    type: str
    params: list[ParamSpec] = field(default_factory=list)
    weights: WeightsFn | None = None
    doc: str = ""
    check: CheckFn | None = None

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.params}
        self.by_name = {p.name: p for p in self.params}

    def weight_specs(self, params: ParamDict) -> list[WeightSpec]:
        """The weight blobs a layer with these params loads, in file order."""
        return self.weights(params) if self.weights else []


_SCHEMAS: dict[str, LayerSchema] = {}


def register_schema(schema: LayerSchema) -> LayerSchema:
    """Make a layer type known (built-in types and plugins both use this)."""
    _SCHEMAS[schema.type] = schema
    return schema


def schema_types() -> list[str]:
    """The names of every known layer type: the built-ins, and those plugins registered."""
    get_schema("Input")  # loads the built-in schemas
    return list(_SCHEMAS)


def get_schema(layer_type: str) -> LayerSchema | None:
    """The schema of a layer type, or None when ncnnc does not know the type."""
    if not _SCHEMAS:
        from ncnnc.core import layer_types  # noqa: F401  (registers the built-in schemas)
    return _SCHEMAS.get(layer_type)


class ParamDict:
    """The parameters of one layer: explicit ``id -> value`` pairs plus schema defaults.

    Index by ncnn id (``p[0]``) or read by name (``p.get("num_output")``).  Only explicitly set
    ids are written back to a ``.param`` file.
    """

    def __init__(self, layer_type: str, values: dict[int, ParamValue] | None = None) -> None:
        self.layer_type = layer_type
        self.values: dict[int, ParamValue] = dict(values or {})

    @property
    def schema(self) -> LayerSchema | None:
        """The schema of this layer type, if known."""
        return get_schema(self.layer_type)

    def _resolve_id(self, key: int | str) -> int:
        if isinstance(key, int):
            return key
        schema = self.schema
        if schema is None or key not in schema.by_name:
            raise KeyError(f"{self.layer_type} has no parameter named {key!r}")
        return schema.by_name[key].id

    def __getitem__(self, key: int | str) -> ParamValue:
        pid = self._resolve_id(key)
        if pid in self.values:
            return self.values[pid]
        schema = self.schema
        spec = schema.by_id.get(pid) if schema else None
        if spec is None:
            return 0
        default = spec.default
        if isinstance(default, Ref):
            return self[default.id]
        return [] if spec.array else default

    def get(self, key: int | str, default: ParamValue | None = None) -> ParamValue:
        """The value of an id or name; ``default`` overrides the schema default when not set."""
        pid = self._resolve_id(key)
        if default is not None and pid not in self.values:
            return default
        return self[pid]

    def __setitem__(self, key: int | str, value: ParamValue) -> None:
        self.values[self._resolve_id(key)] = value

    def __delitem__(self, key: int | str) -> None:
        self.values.pop(self._resolve_id(key), None)

    def __contains__(self, key: int | str) -> bool:
        try:
            return self._resolve_id(key) in self.values
        except KeyError:
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(self.values)

    def items(self) -> list[tuple[int, ParamValue]]:
        """Explicit ``(id, value)`` pairs in the order they were read or set."""
        return list(self.values.items())

    def copy(self) -> ParamDict:
        """An independent copy."""
        return ParamDict(self.layer_type, {k: (list(v) if isinstance(v, list) else v)
                                           for k, v in self.values.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamDict) and self.values == other.values

    def __repr__(self) -> str:
        return f"ParamDict({self.layer_type}, {self.values})"
