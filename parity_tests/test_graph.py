"""Functional models: read from a `.keras` file as a graph, built into the port, checked layer by layer by
check_parity; what the port cannot reproduce exits 2 naming the file and the layer."""
import keras
import pytest
from keras import layers

from cifar_common.spec import describe_keras
from cifar_common.spec.config import load_config
from cifar_common.spec.keras_config import architecture_of_keras_file
from cifar_common.spec.layers import INPUT, Architecture, Conv2D, DepthwiseConv2D
from cifar_common.spec.yaml_form import parse_architecture
from keras_reference.model import build_model
from lightning_impl import check_parity, export
from parity_tests.graphs import random_graphs
from parity_tests.harness import architecture, randomise_batchnorm

GRAPH_SEED = 2028
RANDOM_GRAPHS = 3


def test_random_graphs_cover_the_graph_layers():
    """The seeded draw has Add and Concatenate joins, DepthwiseConv2D (multiplier 2), ZeroPadding2D, ReLU,
    Softmax and strided 'same' convolutions."""
    graphs = random_graphs(GRAPH_SEED, RANDOM_GRAPHS)
    found = {type(layer).__name__ for graph in graphs for layer in graph.layers}
    assert {"Add", "Concatenate", "DepthwiseConv2D", "ZeroPadding2D", "ReLU", "Softmax", "BatchNormalization"} <= found
    assert any(isinstance(layer, DepthwiseConv2D) and layer.depth_multiplier == 2
               for graph in graphs for layer in graph.layers)
    assert any(isinstance(layer, Conv2D) and layer.strides == (2, 2) and layer.padding == "same"
               for graph in graphs for layer in graph.layers)


def test_random_graphs_pass_check_parity(tmp_path, capsys):
    """Random functional CNNs saved by Keras pass check_parity (one call, one Keras process): every layer's
    output, by the file's names, within tolerance; the file reads back as the graph it was built from."""
    graphs = random_graphs(GRAPH_SEED, RANDOM_GRAPHS)
    paths, file_order = [], []
    for index, graph in enumerate(graphs):
        model = build_model(graph)
        randomise_batchnorm(model, index)
        paths.append(tmp_path / f"{graph.name}.keras")
        model.save(paths[-1])
        read, _ = architecture_of_keras_file(paths[-1])
        # Keras lists a graph's layers by depth, not in the order they were built: the same graph
        assert read.fingerprint == graph.fingerprint
        assert {layer.name: (layer, read.inputs_of(i)) for i, layer in enumerate(read.layers)} == \
            {layer.name: (layer, graph.inputs_of(i)) for i, layer in enumerate(graph.layers)}
        file_order.append([layer.name for layer in read.layers])
    status = check_parity.main([*map(str, paths), "--images", "32"])
    out = capsys.readouterr().out
    assert status == 0, out
    for names, report in zip(file_order, out.split("\n\n")):
        assert "verdict: PASS" in report, report
        assert [line.split()[0] for line in report.splitlines()[3:3 + len(names)]] == names, report


def test_graph_description_round_trips_and_a_functional_chain_is_the_chain():
    """A graph's explicit form (with `inputs`) parses back to the same graph and fingerprint; the tutorial
    written as a functional model has the Sequential tutorial's fingerprint; the family's fingerprints stand."""
    graph = random_graphs(GRAPH_SEED, 1)[0]
    assert parse_architecture(graph.to_dict(), "test") == graph
    tutorial = architecture("baseline")
    inbound = ((INPUT,), *((layer.name,) for layer in tutorial.layers[:-1]))
    as_graph = Architecture(tutorial.name, tutorial.layers, inbound)
    assert as_graph.inbound == () and as_graph.fingerprint == tutorial.fingerprint
    # Fingerprints recorded by runs and checkpoints before graphs existed (resume compares them).
    assert {name: architecture(name).fingerprint for name in ("baseline", "dropout", "variant_batchnorm")} == {
        "baseline": "fc4b7d12e250", "dropout": "48e1629730b5", "variant_batchnorm": "f02353f2d3e5"}


def test_describe_keras_writes_a_graph_config_both_sides_build(tmp_path):
    """describe_keras turns a functional file into a config whose graph (with `inputs`) has the file's
    fingerprint; Keras builds it back as a functional model with the same layers."""
    graph = random_graphs(GRAPH_SEED, 1)[0]
    build_model(graph).save(tmp_path / "graph.keras")
    assert describe_keras.main([str(tmp_path / "graph.keras"), "--out", str(tmp_path / "graph.yaml")]) == 0
    described = load_config(tmp_path / "graph.yaml").architecture
    assert described.inbound and described.fingerprint == graph.fingerprint
    rebuilt = build_model(described)
    assert [layer.name for layer in rebuilt.layers[1:]] == [layer.name for layer in described.layers]


@keras.saving.register_keras_serializable(package="test_graph")
class Scale(layers.Layer):
    def call(self, x):
        return 2.0 * x


def head(x):
    return layers.Dense(10, activation="softmax", name="out")(layers.GlobalAveragePooling2D(name="gap")(x))


def refused_models():
    """case: (the model's builder, fragments the error line must hold)."""
    def functional(middle):
        inputs = keras.Input((32, 32, 3))
        return keras.Model(inputs, head(middle(layers.Conv2D(4, 3, name="conv")(inputs))))

    def shared():
        inputs = keras.Input((32, 32, 3))
        conv = layers.Conv2D(3, 3, padding="same", name="twice")
        return keras.Model(inputs, head(conv(conv(inputs))))

    def two_inputs():
        a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
        return keras.Model([a, b], head(layers.Add(name="add")([a, b])))

    def two_outputs():
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(4, 3, name="conv")(inputs)
        return keras.Model(inputs, [head(x), layers.Flatten(name="flat")(x)])

    def nested():
        inner = keras.Sequential([keras.Input((30, 30, 4)), layers.Conv2D(4, 3)], name="inner")
        return functional(inner)

    return {
        "lambda": (lambda: functional(layers.Lambda(lambda x: x * 2, name="double")),
                   ["'double' (Lambda)", "Python code"]),
        "custom-class": (lambda: functional(Scale(name="scale")), ["'scale' (Scale)", "custom layer class"]),
        "shared-layer": (shared, ["'twice' (Conv2D)", "called 2 times", "shared weights"]),
        "two-inputs": (two_inputs, ["2 inputs", "one input"]),
        "two-outputs": (two_outputs, ["2 outputs", "one output"]),
        "nested-model": (nested, ["'inner' (Sequential)", "nested model"]),
        "concatenate-rows": (lambda: functional(lambda x: layers.Concatenate(axis=1, name="rows")([x, x])),
                             ["Concatenate rows on axis 1", "only the channels axis"]),
        "relu6": (lambda: functional(layers.ReLU(max_value=6.0, name="relu6")), ["'relu6' (ReLU)", "max_value=6.0"]),
    }


@pytest.mark.parametrize("case", list(refused_models()))
def test_graph_outside_the_family_exits_2_naming_file_and_layer(case, tmp_path, capsys):
    """check_parity and keras2lightning refuse the file before anything else: exit 2, one line."""
    build, fragments = refused_models()[case]
    path = tmp_path / f"{case}.keras"
    build().save(path)
    for command in (lambda: check_parity.main([str(path), "--images", "8"]),
                    lambda: export.main([str(path), "--out", str(tmp_path / "out")])):
        status = command()
        captured = capsys.readouterr()
        assert status == 2 and captured.out == "", captured
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), captured.err
        assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert not (tmp_path / "out").exists()

