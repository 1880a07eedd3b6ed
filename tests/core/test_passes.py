"""The pass manager and the declarative pattern API, on tiny graphs (no weights needed)."""

from __future__ import annotations

import pytest

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import GraphError, NcnncError
from ncnnc.core.ir import Graph
from ncnnc.core.passes import Pass, PassManager, graph_pass
from ncnnc.core.patterns import Match, Op, Pattern, PatternPass, can_eliminate, chain, eliminate, fuse_into


def relu_chain(n: int = 3) -> Graph:
    b = GraphBuilder()
    x = b.input("data", (2, 3, 4))
    for _ in range(n):
        x = b.layer("ReLU", [x])
    return b.build()


def remove_first(ltype: str, name: str, **kw) -> Pass:
    """A pass removing one layer of ``ltype`` per run."""
    @graph_pass(name, **kw)
    def run(graph: Graph) -> list[str]:
        for layer in graph.layers:
            if layer.type == ltype and can_eliminate(graph, layer):
                eliminate(graph, layer)
                return [f"removed {layer.name}"]
        return []
    return run


def test_manager_runs_until_nothing_changes():
    graph = relu_chain(3)
    report = PassManager([remove_first("ReLU", "drop_relu")], validate=True).run(graph)
    # one ReLU per round; the last one keeps the graph output's name, so it stays
    assert [layer.type for layer in graph.layers] == ["Input", "ReLU"]
    assert report.rounds == 3 and report.counts() == {"drop_relu": 2}
    assert graph.explicit_outputs is None and graph.outputs == ["relu_3"]


def test_order_level_disable_only():
    a = remove_first("ReLU", "a", order=20)
    b = remove_first("ReLU", "b", order=10)
    c = remove_first("ReLU", "c", level=2)
    assert [p.name for p in PassManager([a, b, c]).passes] == ["b", "a", "c"]
    assert [p.name for p in PassManager([a, b, c], level=1).passes] == ["b", "a"]
    assert [p.name for p in PassManager([a, b, c], disable=["a"]).passes] == ["b", "c"]
    assert [p.name for p in PassManager([a, b, c], level=0, only=["c", "a"]).passes] == ["a", "c"]


def test_unknown_and_duplicate_names_are_user_errors():
    with pytest.raises(NcnncError, match=r"no pass named 'nope'.*available: a"):
        PassManager([remove_first("ReLU", "a")], disable=["nope"])
    with pytest.raises(NcnncError, match="two passes share the name 'a'"):
        PassManager([remove_first("ReLU", "a"), remove_first("TanH", "a")])


def test_non_converging_passes_are_reported():
    @graph_pass("flip")
    def flip(graph: Graph) -> list[str]:
        layer = graph.layers[1]
        layer.type = "Sigmoid" if layer.type == "ReLU" else "ReLU"
        return ["flipped"]

    with pytest.raises(NcnncError, match=r"did not settle after 5 rounds.*flip"):
        PassManager([flip], max_rounds=5).run(relu_chain(1))


def test_validation_names_the_broken_pass():
    @graph_pass("breaker")
    def breaker(graph: Graph) -> list[str]:
        if len(graph) < 3:
            return []
        graph.remove_layer(graph.layers[1])
        return ["dropped a layer without rewiring"]

    with pytest.raises(GraphError, match="pass breaker left an invalid graph"):
        PassManager([breaker], validate=True).run(relu_chain(2))
    graph = relu_chain(2)
    PassManager([breaker], validate=False).run(graph)
    with pytest.raises(GraphError):
        graph.validate()


def test_validation_from_environment(monkeypatch):
    monkeypatch.setenv("NCNNC_DEBUG", "1")
    assert PassManager([]).validate
    monkeypatch.setenv("NCNNC_DEBUG", "0")
    assert not PassManager([]).validate


def test_shapes_given_to_passes_that_need_them():
    seen = []

    @graph_pass("look", needs_shapes=True)
    def look(graph: Graph) -> list[str]:
        seen.append(dict(graph.shapes))
        return []

    graph = relu_chain(1)
    report = PassManager([look]).run(graph)
    assert seen == [{"data": (2, 3, 4), "relu_1": (2, 3, 4)}] and not report.notes
    assert graph.shapes == {}

    b = GraphBuilder()
    b.layer("ReLU", [b.layer("Input", [], {}, name="data")])  # an Input without shape
    report = PassManager([look]).run(b.build())
    assert seen[-1] == {} and "shape inference failed" in report.notes[0]


def test_pass_needs_name_and_run():
    with pytest.raises(ValueError):
        Pass()
    with pytest.raises(NotImplementedError):
        Pass("abstract").run(Graph())


# -- patterns -------------------------------------------------------------------------------------
def first_match(pattern: Pattern | list[Pattern], graph: Graph, where=None) -> Match | None:
    return PatternPass("p", pattern, lambda g, m: None, where=where).find(graph)


def conv_relu_graph(split: bool = False) -> Graph:
    b = GraphBuilder()
    x = b.layer("Convolution", [b.input("data", (2, 3, 4))], {0: 2, 1: 1, 6: 4}, name="conv")
    if split:
        x, y = b.layer("Split", [x], outputs=2)
        b.layer("TanH", [y])
    b.layer("ReLU", [x], name="relu")
    return b.build()


def test_chain_matches_and_binds_names():
    m = first_match(chain(conv=Op("Convolution"), act=Op(("ReLU", "Clip"))), conv_relu_graph())
    assert m is not None and [x.name for x in m.values()] == ["conv", "relu"] and list(m) == ["conv", "act"]


def test_intermediate_with_other_readers_or_graph_output_does_not_match():
    pattern = chain(conv=Op("Convolution"), split=Op("Split"), act=Op("ReLU"))
    assert first_match(pattern, conv_relu_graph(split=True)) is None
    shared = chain(conv=Op("Convolution"), split=Op("Split", shared=True), act=Op("ReLU"))
    assert first_match(shared, conv_relu_graph(split=True)) is not None
    graph = conv_relu_graph()
    graph.explicit_outputs = ["conv", "relu"]
    assert first_match(chain(conv=Op("Convolution"), act=Op("ReLU")), graph) is None


def test_predicates_input_counts_and_match_condition():
    graph = conv_relu_graph()
    assert first_match(chain(conv=Op("Convolution", where=lambda x: x.p("num_output") == 3), act=Op("ReLU")),
                       graph) is None
    assert first_match(Pattern(x=Op("ReLU", n_inputs=2)), graph) is None
    assert first_match(Pattern(x=Op("ReLU")), graph, where=lambda g, m: m["x"].name != "relu") is None


def dag_graph() -> Graph:
    b = GraphBuilder()
    a, c = b.layer("Split", [b.input("data", (2, 3, 4))], outputs=2)
    md = b.layer("MemoryData", [], {"w": 4}, name="md")
    b.layer("BinaryOp", [md, b.layer("TanH", [a], name="tanh")], {0: 0}, name="add")
    b.layer("Sigmoid", [c])
    return b.build()


def test_dag_with_commutative_inputs():
    fixed = Pattern(t=Op("TanH"), md=Op("MemoryData"), op=Op("BinaryOp", inputs=("t", "md")))
    assert first_match(fixed, dag_graph()) is None
    swapped = Pattern(t=Op("TanH"), md=Op("MemoryData"), op=Op("BinaryOp", inputs=("t", "md"), commutative=True))
    m = first_match(swapped, dag_graph())
    assert m is not None and (m["t"].name, m["md"].name, m["op"].name) == ("tanh", "md", "add")
    any_left = Pattern(md=Op("MemoryData"), op=Op("BinaryOp", inputs=(None, "md"), commutative=True))
    assert first_match(any_left, dag_graph()) is not None


def test_pattern_definition_errors():
    with pytest.raises(ValueError, match="unknown node"):
        Pattern(a=Op("ReLU", inputs=("b",)))
    with pytest.raises(ValueError, match="do not feed the anchor"):
        Pattern(a=Op("ReLU"), b=Op("TanH"))
    with pytest.raises(ValueError):
        Pattern()


def test_pattern_pass_rewrites_every_match_and_skips_declined():
    calls = []

    def rewrite(graph: Graph, m: Match) -> str | None:
        calls.append(m["x"].name)
        if m["x"].name == "relu_2":
            return None
        m["x"].type = "TanH"
        return f"{m['x'].name} -> TanH"

    graph = relu_chain(3)
    changes = PatternPass("relu_to_tanh", Pattern(x=Op("ReLU")), rewrite).run(graph)
    assert changes == ["relu_1 -> TanH", "relu_3 -> TanH"] and calls == ["relu_1", "relu_2", "relu_3"]


def test_fuse_into_and_eliminate_keep_ncnn_blob_names():
    graph = conv_relu_graph()
    fuse_into(graph, graph.layer("conv"), graph.layer("relu"))
    assert graph.layer("conv").outputs == ["relu"] and len(graph) == 2
    graph = relu_chain(3)
    eliminate(graph, graph.layer("relu_2"))
    assert graph.layer("relu_1").outputs == ["relu_2"] and graph.layer("relu_3").inputs == ["relu_2"]
    eliminate(graph, graph.layer("relu_1"))  # its input is the graph input: readers are rewired
    assert graph.layer("relu_3").inputs == ["data"]
    assert not can_eliminate(graph, graph.layer("relu_3"))
    with pytest.raises(ValueError):
        eliminate(graph, graph.layer("relu_3"))
