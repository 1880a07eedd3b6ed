"""Graph invariants and rewrite helpers."""

from __future__ import annotations

import pytest

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import GraphError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.params import ParamDict


def _chain():
    b = GraphBuilder()
    x = b.input("data", (3, 4, 4))
    y = b.layer("ReLU", [x], name="relu")
    z = b.layer("Dropout", [y], name="drop")
    b.layer("Sigmoid", [z], name="sig")
    return b.build()


def test_params_defaults_and_names():
    p = ParamDict("Convolution", {0: 8, 1: 3, 4: 1})
    assert p["num_output"] == 8 and p["kernel_h"] == 3 and p["pad_bottom"] == 1 and p["stride_w"] == 1
    assert p["activation_params"] == [] and p[9] == 0
    p["kernel_h"] = 5
    assert p[11] == 5 and list(p) == [0, 1, 4, 11]
    with pytest.raises(KeyError):
        p["no_such_param"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda g: g.layers[2].inputs.__setitem__(0, "ghost"), "never produced"),
    (lambda g: g.layers[2].outputs.__setitem__(0, "relu"), "already produced"),
    (lambda g: g.layers.reverse(), "read before it is produced"),
    (lambda g: g.layers[2].__setattr__("name", "relu"), "duplicate layer name"),
])
def test_validate_rejects(mutate, message):
    g = _chain()
    mutate(g)
    with pytest.raises(GraphError, match=message):
        g.validate()


def test_cycle_detected_by_toposort():
    g = Graph([Layer("ReLU", "a", ["y"], ["x"]), Layer("ReLU", "b", ["x"], ["y"])])
    with pytest.raises(GraphError, match="cycle"):
        g.toposort()


def test_unused_outputs_reported():
    g = _chain()
    g.layers[1].outputs.append("side")
    g.explicit_outputs = ["sig"]
    assert [(layer.name, b) for layer, b in g.unused_outputs()] == [("relu", "side")]


def test_bypass_and_rewire_and_toposort():
    g = _chain()
    g.bypass(g.layer("drop"))
    g.validate()
    assert [layer.name for layer in g] == ["data", "relu", "sig"] and g.layer("sig").inputs == ["relu"]
    g.layers.reverse()
    g.toposort()
    assert [layer.name for layer in g] == ["data", "relu", "sig"]


def test_bypass_keeps_output_name():
    b = GraphBuilder()
    x = b.input("data", (3,))
    y = b.layer("ReLU", [x], name="relu")
    b.layer("Noop", [y], name="out")
    g = b.build()
    g.bypass(g.layer("out"))
    g.validate()
    assert g.outputs == ["out"]


def test_insert_replace_remove():
    g = _chain()
    relu = g.layer("relu")
    g.insert_after(relu, Layer("TanH", g.unique_name("relu"), ["relu"], ["t"]))
    g.rewire("relu", "t")
    g.layer("relu_1").inputs = ["relu"]
    g.validate()
    g.replace_layer(g.layer("sig"), Layer("Swish", "sw", ["drop"], ["sig"]))
    g.validate()
    assert [layer.type for layer in g] == ["Input", "ReLU", "TanH", "Dropout", "Swish"]
    g.remove_layer(g.layer("sw"))
    g.validate()
    assert g.outputs == ["drop"]
