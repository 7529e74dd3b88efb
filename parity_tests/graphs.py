"""Functional Keras CNNs for the graph and export tests: seeded random graphs of the family, and a small
ResNet-like model written directly with Keras's functional API (never described by the project)."""
from __future__ import annotations

import keras
import numpy as np

from cifar_common.spec.layers import (INPUT, Activation, Add, Architecture, BatchNormalization, Concatenate, Conv2D,
                                      Dense, DepthwiseConv2D, Flatten, GlobalAveragePooling2D, Layer, ReLU, Softmax,
                                      ZeroPadding2D)


def random_graph(rng: np.random.Generator, index: int) -> Architecture:
    """A random functional CNN: a stem, then blocks drawn from residual (Add), projection shortcut (strided
    conv on both paths), concatenated branches (one through ZeroPadding2D and an even kernel) and depthwise;
    BatchNorm and ReLU layers; a global-pooling or flatten head; softmax in the Dense or as its own layer."""
    layers: list[Layer] = []
    inbound: list[tuple[str, ...]] = []
    count = iter(range(1, 1000))

    def add(layer: Layer, *inputs: str) -> str:
        layers.append(layer)
        inbound.append(inputs)
        return layer.name

    def name(kind: str) -> str:
        return f"{kind}_{next(count)}"

    def conv(x: str, filters: int, kernel: int = 3, strides: int = 1, padding: str = "same") -> str:
        x = add(Conv2D(name("conv"), filters, (kernel, kernel), (strides, strides), padding, "linear",
                            bool(rng.random() < 0.5)), x)
        return add(BatchNormalization(name("bn"), float(rng.choice([0.9, 0.99]))), x)

    channels, size = 8, 32
    x = add(ReLU(name("relu")), conv(INPUT, channels))
    kinds = ["residual", "projection", "concat", "depthwise"]
    for kind in [kinds[index % 4], *rng.choice(kinds, size=2)]:
        strides = 2 if size >= 8 and rng.random() < 0.6 else 1
        if kind == "residual":
            branch = conv(add(ReLU(name("relu")), conv(x, channels)), channels)
            x = add(ReLU(name("relu")), add(Add(name("add")), branch, x))
        elif kind == "projection":
            wider = channels * 2
            branch = conv(add(ReLU(name("relu")), conv(x, wider, 3, strides)), wider)
            shortcut = conv(x, wider, 1, strides, "valid")
            x = add(Activation(name("act"), "relu"), add(Add(name("add")), branch, shortcut))
            channels, size = wider, -(-size // strides)
        elif kind == "concat":
            left = add(Conv2D(name("conv"), 4, (1, 1), activation="relu"), x)
            padded = add(ZeroPadding2D(name("pad"), ((0, 1), (0, 1))), x)
            right = add(Conv2D(name("conv"), 6, (2, 2), padding="valid", activation="elu"), padded)
            x = add(Concatenate(name("concat")), left, right, x)
            channels += 10
        else:
            multiplier = int(rng.choice([1, 2]))
            x = add(DepthwiseConv2D(name("depthwise"), (3, 3), (strides, strides), "same", multiplier,
                                         "linear", bool(rng.random() < 0.5)), x)
            x = add(ReLU(name("relu")), add(BatchNormalization(name("bn")), x))
            channels, size = channels * multiplier, -(-size // strides)
    if index % 2:
        x = add(Dense(name("dense"), 16, "tanh"), add(Flatten(name("flatten")), x))
    else:
        x = add(GlobalAveragePooling2D(name("gap")), x)
    if index % 3 == 1:
        add(Softmax(name("softmax")), add(Dense(name("logits"), 10, "linear"), x))
    else:
        add(Dense(name("dense"), 10, "softmax"), x)
    return Architecture(f"graph{index}", tuple(layers), tuple(inbound))


def random_graphs(seed: int, count: int) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [random_graph(rng, index) for index in range(count)]


def resnet_like() -> keras.Model:
    """Residual Add blocks (an identity and a projection shortcut), a Concatenate branch and global
    pooling, written as a user writes Keras, with Keras's default layer names."""
    from keras import layers

    def block(x, filters: int, strides: int = 1):
        shortcut = x
        y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if strides != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
            shortcut = layers.BatchNormalization()(shortcut)
        return layers.Activation("relu")(layers.Add()([y, shortcut]))

    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = block(x, 16)
    x = block(x, 32, strides=2)
    wide = layers.Conv2D(8, 1, activation="relu")(x)
    deep = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Conv2D(8, 1, activation="relu")(x))
    x = layers.Concatenate()([x, wide, deep])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="resnet_like")
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
