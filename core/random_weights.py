"""Random weights from the layer schemas, for a model whose ``.bin`` is not at hand.

Every weight a layer's params call for but the layer does not have is drawn from a seeded generator
with a scale that keeps activations in a sane range through deep networks: convolution and matrix
weights ``N(0, 1/fan_in)``, variances and multiplicative factors (BatchNorm ``var``/``slope``, norm
``gamma``, ``scale``) around 1, additive terms (``bias``, ``beta``, ``mean``) small, constant data
uniform in [-1, 1].  The same graph and seed give the same weights.
"""

from __future__ import annotations

import math

import numpy as np

from ncnnc.core.ir import Graph, Weight
from ncnnc.core.params import WeightSpec

_AROUND_ONE = ("var", "slope", "gamma", "scale")
_SMALL = ("bias", "beta", "mean")


def random_weight(spec: WeightSpec, rng: np.random.Generator) -> Weight:
    """One weight blob of ``spec``'s size and shape, drawn with a scale that suits its role."""
    shape = spec.shape if spec.shape and math.prod(spec.shape) == spec.count else (spec.count,)
    name = spec.name.lower()
    if any(word in name for word in _AROUND_ONE):
        data = rng.uniform(0.5, 1.5, shape)
    elif any(word in name for word in _SMALL):
        data = rng.uniform(-0.1, 0.1, shape)
    elif "weight" in name and len(shape) > 1:
        fan_in = max(math.prod(shape[1:]), 1)
        data = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
    else:
        data = rng.uniform(-1.0, 1.0, shape)
    return Weight(data.astype(np.float32), "fp32" if spec.load_type == 0 else "raw")


def fill_missing_weights(graph: Graph, seed: int = 0) -> int:
    """Give every layer the weights its params call for and it lacks; returns how many were made."""
    rng = np.random.default_rng(seed)
    made = 0
    for layer, name in graph.missing_weights():
        spec = next(s for s in layer.weight_specs() if s.name == name)
        layer.weights[name] = random_weight(spec, rng)
        made += 1
    return made
