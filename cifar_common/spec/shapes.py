"""Each layer's output shape, inferred from the description alone, and the checks that refuse what the
port cannot train like Keras (an impossible stack, a last layer that is not softmax, the wrong class count)."""
from __future__ import annotations

import math

from cifar_common.errors import UserError
from cifar_common.spec.layers import (Architecture, AveragePooling2D, BatchNormalization, Conv2D, Dense, Flatten,
                                      GlobalAveragePooling2D, MaxPooling2D)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after), the odd pixel after (bottom/right)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window_output(size: int, window: int, stride: int, padding: str) -> int:
    return math.ceil(size / stride) if padding == "same" else (size - window) // stride + 1


def output_shapes(architecture: Architecture, input_shape: tuple[int, int, int],
                  source: str = "architecture") -> list[tuple[int, ...]]:
    """Each layer's output shape in Keras's layout ((H, W, C) or (features,)); refuses impossible stacks."""
    shape: tuple[int, ...] = tuple(input_shape)
    shapes = []
    after_flatten = False  # features in flatten's order, not yet mixed by a Dense
    for layer in architecture.layers:
        kind = type(layer).__name__
        where = f"{source}: layer {layer.name} ({kind})"
        needs_map = isinstance(layer, (Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten))
        if needs_map and len(shape) != 3:
            raise UserError(f"{where} needs a feature map, but its input has shape {shape}")
        if isinstance(layer, Dense) and len(shape) != 1:
            raise UserError(f"{where} on a feature map of shape {shape}: put Flatten or "
                            f"GlobalAveragePooling2D before it (Dense over the last axis is not supported)")
        if isinstance(layer, BatchNormalization) and after_flatten:
            raise UserError(f"{where} directly after Flatten is not supported (its statistics would be "
                            f"per pixel and channel); put it after a Conv2D or a Dense")
        if isinstance(layer, Conv2D):
            spatial = [_window_output(shape[i], layer.kernel_size[i], layer.strides[i], layer.padding) for i in (0, 1)]
            shape = (*spatial, layer.filters)
        elif isinstance(layer, (MaxPooling2D, AveragePooling2D)):
            spatial = [_window_output(shape[i], layer.pool_size[i], layer.strides[i], "valid") for i in (0, 1)]
            shape = (*spatial, shape[2])
        elif isinstance(layer, GlobalAveragePooling2D):
            shape = (shape[2],)
        elif isinstance(layer, Flatten):
            shape, after_flatten = (math.prod(shape),), True
        elif isinstance(layer, Dense):
            shape, after_flatten = (layer.units,), False
        if min(shape) < 1:
            raise UserError(f"{where}: its output would be empty ({shape}); the input is too small for it")
        shapes.append(shape)
    return shapes


def last_activation(architecture: Architecture) -> str | None:
    last = architecture.layers[-1] if architecture.layers else None
    return getattr(last, "activation", None)


LOSS_FOR_LAST_ACTIVATION = {
    "linear": "CategoricalCrossentropy(from_logits=True) (what F.cross_entropy computes)",
    "sigmoid": "binary_crossentropy per class (BCEWithLogitsLoss in PyTorch)",
}


def validate(architecture: Architecture, input_shape: tuple[int, int, int], num_classes: int,
             source: str = "architecture") -> list[tuple[int, ...]]:
    """Refuse what the port cannot train like Keras: returns the output shapes when all is well."""
    names = [layer.name for layer in architecture.layers]
    for name in names:
        if not name or "." in name or names.count(name) > 1:
            raise UserError(f"{source}: layer name {name!r} must be non-empty, unique and without '.'")
    if not architecture.layers:
        raise UserError(f"{source}: the architecture has no layers")
    activation = last_activation(architecture)
    if activation != "softmax":
        last = architecture.layers[-1]
        loss = LOSS_FOR_LAST_ACTIVATION.get(activation, "no loss this project trains with")
        raise UserError(
            f"{source}: the last layer {last.name} ({type(last).__name__}) has activation {activation!r}; "
            f"the loss that would match it is {loss}, but both sides train with categorical_crossentropy "
            f"on a softmax: end the model with softmax")
    shapes = output_shapes(architecture, input_shape, source)
    if shapes[-1] != (num_classes,):
        raise UserError(f"{source}: the output has shape {shapes[-1]}, but the data have {num_classes} classes")
    return shapes
