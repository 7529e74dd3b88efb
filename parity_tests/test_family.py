"""The family: seeded random Keras CNNs, built, briefly trained and saved by Keras, pass check_parity
as a user's file would; models outside the family exit 2 naming the layer and the option."""
import keras
import numpy as np
import pytest

from cifar_common.data import to_unit_float
from cifar_common.spec.config import TrainingConfig
from cifar_common.spec.layers import (ACTIVATIONS, LAYER_CLASSES, MERGES, Activation, Architecture, AveragePooling2D,
                                      BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                                      GlobalAveragePooling2D, MaxPooling2D, ReLU, Softmax, ZeroPadding2D)
from cifar_common.spec.shapes import output_shapes
from keras_reference.model import build_model, compile_model
from lightning_impl import check_parity

FAMILY_SEED = 2026
RANDOM_MODELS = 3



def random_layers(rng: np.random.Generator, index: int) -> list:
    """One random stack of the family: conv blocks (kernel sizes, strides, padding, bias, activation,
    BatchNorm before or after the activation, pools), dense layers. The head (Flatten, with a Dropout
    after it, or GlobalAveragePooling2D) and the output (softmax Dense, or linear Dense and a softmax
    Activation) alternate with `index`, so that a few models cover both."""
    layers, size, count = [], 32, iter(range(1, 1000))
    name = lambda kind: f"{kind}_{next(count)}"  # noqa: E731  (names unlike the tutorial's, as a user's)

    def batch_norm() -> BatchNormalization:
        return BatchNormalization(name("bn"), float(rng.choice([0.5, 0.9, 0.99])), float(rng.choice([1e-3, 1e-5])))

    def with_activation(layer_cls, activation: str, **options) -> list:
        style = rng.choice(["plain", "bn_after", "bn_between"])
        if style == "bn_between":  # the Keras idiom: linear layer, BatchNorm, Activation
            return [layer_cls(name=name(layer_cls.__name__.lower()), activation="linear", **options),
                    batch_norm(), Activation(name("act"), activation)]
        layer = layer_cls(name=name(layer_cls.__name__.lower()), activation=activation, **options)
        return [layer, batch_norm()] if style == "bn_after" else [layer]

    for _ in range(rng.integers(1, 4)):
        for _ in range(rng.integers(1, 3)):
            kernel = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
            strides = (int(rng.choice([1, 2])), int(rng.choice([1, 2]))) if size >= 8 else (1, 1)
            padding = str(rng.choice(["same", "valid"])) if size > 6 else "same"
            layers += with_activation(Conv2D, str(rng.choice(ACTIVATIONS)), filters=int(rng.integers(4, 17)),
                                      kernel_size=kernel, strides=strides, padding=padding,
                                      use_bias=bool(rng.random() < 0.7))
            size = output_shapes(Architecture("probe", tuple(layers)), (32, 32, 3))[-1][0]
        if size >= 4 and rng.random() < 0.8:
            pool = int(rng.choice([2, 3]))
            cls = MaxPooling2D if rng.random() < 0.5 else AveragePooling2D
            layers.append(cls(name(cls.__name__.lower()), (pool, pool), (2, 2)))
            size = output_shapes(Architecture("probe", tuple(layers)), (32, 32, 3))[-1][0]
        if rng.random() < 0.5:
            layers.append(Dropout(name("dropout"), 0.25))
    if index % 2 == 0:  # flatten's (H, W, C) order must survive the Dropout after it
        layers += [Flatten(name("flatten")), Dropout(name("dropout"), 0.25)]
    else:
        layers.append(GlobalAveragePooling2D(name("gap")))
    for _ in range(rng.integers(0, 3)):
        layers += with_activation(Dense, str(rng.choice(ACTIVATIONS)), units=int(rng.integers(8, 33)),
                                  use_bias=bool(rng.random() < 0.8))
        if rng.random() < 0.5:
            layers.append(Dropout(name("dropout"), 0.5))
    if index % 3 != 1:
        layers.append(Dense(name("dense"), 10, activation="softmax"))
    else:
        layers += [Dense(name("dense"), 10, activation="linear"), Activation(name("act"), "softmax")]
    return layers


def random_architectures(seed: int, count: int) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [Architecture(f"random{i}", tuple(random_layers(rng, i))) for i in range(count)]


def train_briefly_and_save(architecture: Architecture, cifar, path) -> None:
    """A few RMSprop steps on 64 real images, so weights and BatchNorm's moving statistics have moved."""
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(architecture), TrainingConfig())
    model.fit(to_unit_float(cifar.x_train[:64]), keras.utils.to_categorical(cifar.y_train[:64], 10),
              batch_size=16, epochs=1, verbose=0)
    model.save(path)


def test_random_family_covers_every_layer_class():
    """The seeded draw exercises every class of the family, BatchNorm's two placements and strided 'same'."""
    layers = [layer for a in random_architectures(FAMILY_SEED, RANDOM_MODELS) for layer in a.layers]
    graph_only = {cls.__name__ for cls in (*MERGES, DepthwiseConv2D, ZeroPadding2D, ReLU, Softmax)}
    assert {type(layer).__name__ for layer in layers} == set(LAYER_CLASSES) - graph_only
    convs = [layer for layer in layers if isinstance(layer, Conv2D)]
    assert any(c.padding == "same" and max(c.strides) > 1 for c in convs)
    assert any(c.padding == "valid" for c in convs) and any(not c.use_bias for c in convs)


def test_random_keras_cnns_pass_check_parity(cifar, tmp_path, capsys):
    """Seeded random CNNs of the family, each trained a few steps by Keras and saved, pass check_parity
    (one call for all, as a user may run it): exit 0, every layer of each file, by the file's own
    layer names, within tolerance, BatchNorm's moving statistics included."""
    architectures = random_architectures(FAMILY_SEED, RANDOM_MODELS)
    paths = [tmp_path / f"{architecture.name}.keras" for architecture in architectures]
    for architecture, path in zip(architectures, paths):
        train_briefly_and_save(architecture, cifar, path)
    status = check_parity.main([*map(str, paths), "--images", "64"])
    out = capsys.readouterr().out
    assert status == 0, out
    reports = out.split("\n\n")
    assert len(reports) == RANDOM_MODELS, out
    for architecture, report in zip(architectures, reports):
        assert "verdict: PASS" in report and "all within tolerance" in report, report
        table_names = [line.split()[0] for line in report.splitlines()[3:3 + len(architecture.layers)]]
        assert table_names == [layer.name for layer in architecture.layers], report


def small_model(*middle, last="softmax", trainable=True) -> keras.Sequential:
    from keras import layers
    middle = [make() for make in middle]
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(4, 3, name="conv"), *middle,
                              layers.GlobalAveragePooling2D(name="gap"),
                              layers.Dense(10, activation=last, name="out")])
    model.trainable = trainable
    return model


def outside_family():
    """case: (the model's builder, fragments the error line must hold)."""
    from keras import layers, regularizers
    return {
        "dilation": (lambda: small_model(lambda: layers.Conv2D(4, 3, dilation_rate=2, name="dilated")),
                     ["'dilated' (Conv2D)", "dilation_rate=[2, 2]", "[1, 1]"]),
        "regularizer": (lambda: small_model(lambda: layers.Conv2D(4, 3, kernel_regularizer=regularizers.L2(1e-4), name="reg")),
                        ["'reg' (Conv2D)", "kernel_regularizer", "only kernel_regularizer=None"]),
        "frozen-layer": (lambda: small_model(lambda: layers.Conv2D(4, 3, name="frozen", trainable=False)),
                         ["'frozen' (Conv2D)", "trainable=False"]),
        "frozen-model": (lambda: small_model(trainable=False), ["frozen (trainable=False)"]),
        "layer-class": (lambda: small_model(lambda: layers.LayerNormalization(name="ln")),
                        ["'ln' (LayerNormalization)", "outside the supported family", "BatchNormalization"]),
        "batchnorm-no-scale": (lambda: small_model(lambda: layers.BatchNormalization(scale=False, name="bn")),
                               ["'bn' (BatchNormalization)", "scale=False"]),
        "pool-same": (lambda: small_model(lambda: layers.MaxPooling2D(2, padding="same", name="pool")),
                      ["'pool' (MaxPooling2D)", "padding='same'", "padding='valid'"]),
        "last-sigmoid": (lambda: small_model(last="sigmoid"), ["last layer out (Dense)", "'sigmoid'", "binary_crossentropy"]),
        "last-linear": (lambda: small_model(last="linear"), ["last layer out (Dense)", "'linear'", "from_logits=True"]),
    }


@pytest.mark.parametrize("case", list(outside_family()))
def test_model_outside_the_family_exits_2_naming_layer_and_option(case, tmp_path, capsys):
    """check_parity refuses the file before comparing anything: exit 2, one line naming what is unsupported."""
    build, fragments = outside_family()[case]
    path = tmp_path / f"{case}.keras"
    build().save(path)
    status = check_parity.main([str(path), "--images", "8"])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == "", captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), captured.err
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
