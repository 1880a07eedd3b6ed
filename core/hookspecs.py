"""The plugin contract: every hook ncnnc calls, in one place (like pytest's ``hookspec.py``).

A plugin is a module or object with functions marked ``@hookimpl`` whose names match the specs
below.  Built-in frontends, passes, calibrators and backends register through these same hooks;
a third-party package registers by declaring an entry point in the group ``ncnnc``::

    [project.entry-points.ncnnc]
    my_plugin = "my_package.ncnnc_plugin"

Each hook returns a list of items it adds.  Every item has a ``name`` (unique within its kind,
what users type on the command line) and a one-line ``description``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ncnnc.core.params import LayerSchema

PROJECT = "ncnnc"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ncnnc_layer_types() -> list[LayerSchema]:
    """Layer types beyond ncnn's built-ins: their params, defaults and weight layout.

    Return :class:`ncnnc.core.params.LayerSchema` objects.  A custom layer type must be known to
    the runtime that loads the model (a custom layer registered in ncnn).
    """


@hookspec
def ncnnc_layer_implementations() -> list:
    """Behaviour of custom layer types: :class:`ncnnc.core.custom_layers.LayerImplementation` objects.

    Each gives a type's shape rule, its numpy op (the reference backend and calibration run it) and
    optionally a Python ``ncnn.Layer`` factory so the real ncnn runtime runs the model too.  Declare
    the type's params with ``ncnnc_layer_types`` as well.
    """


@hookspec
def ncnnc_frontends() -> list:
    """Model readers: :class:`ncnnc.core.frontend.Frontend` objects.

    A frontend says whether it can read a list of input paths (``claims``) and turns them into a
    :class:`~ncnnc.core.ir.Graph` of ncnn-semantics layers (``load``).
    """


@hookspec
def ncnnc_passes() -> list:
    """Graph passes: :class:`ncnnc.core.passes.Pass` objects (fusions, eliminations, rewrites).

    Declarative fusion patterns are passes too (:class:`ncnnc.core.patterns.PatternPass`).
    """


@hookspec
def ncnnc_calibrators() -> list:
    """Calibration methods: :class:`ncnnc.core.calibration.CalibratorFactory` objects.

    A calibrator observes activation batches of one blob, keeps statistics that merge, and turns
    them into an int8 scale (see ``docs/calibrators.md``).
    """


@hookspec
def ncnnc_refiners() -> list:
    """Refine steps run between calibration and quantization: :class:`ncnnc.core.refine.Refiner` objects.

    A refiner adjusts each quantized layer's fp32 weights and bias, in model order, seeing the layer's
    input in the fp32 model and in the model quantized so far (``docs/quantization.md``).
    """


@hookspec
def ncnnc_backends() -> list:
    """Graph consumers: :class:`ncnnc.core.backend.Backend` objects (writers, interpreters, code generators)."""


@hookspec
def ncnnc_targets() -> list:
    """CPU targets for code generation: :class:`ncnnc.core.backend.Target` objects."""
