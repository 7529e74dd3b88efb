"""Each layer's output shape, inferred from the description alone, and the checks that refuse what the
port cannot train like Keras (an impossible stack or graph, a last layer that is not softmax, the wrong
class count)."""
from __future__ import annotations

import math

from cifar_common.errors import UserError
from cifar_common.spec.layers import (INPUT, MERGES, Add, Architecture, AveragePooling2D, BatchNormalization,
                                      Conv2D, Dense, DepthwiseConv2D, Flatten, GlobalAveragePooling2D, Layer,
                                      MaxPooling2D, ReLU, Softmax, ZeroPadding2D)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after), the odd pixel after (bottom/right)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window_output(size: int, window: int, stride: int, padding: str) -> int:
    return math.ceil(size / stride) if padding == "same" else (size - window) // stride + 1


def check_graph(architecture: Architecture, source: str = "architecture") -> None:
    """Every layer fed by earlier layers (or the input), one input unless it merges, and every layer but
    the last feeding another (one output)."""
    if architecture.inbound and len(architecture.inbound) != len(architecture.layers):
        raise UserError(f"{source}: {len(architecture.inbound)} input lists for {len(architecture.layers)} layers")
    known, consumed = {INPUT}, set()
    for index, layer in enumerate(architecture.layers):
        where = f"{source}: layer {layer.name} ({type(layer).__name__})"
        inputs = architecture.inputs_of(index)
        unknown = [name for name in inputs if name not in known]
        if unknown:
            raise UserError(f"{where} takes {unknown[0]!r}, which is not a layer before it (or {INPUT!r})")
        if isinstance(layer, MERGES) and len(inputs) < 2:
            raise UserError(f"{where} merges at least two inputs, got {len(inputs)}")
        if not isinstance(layer, MERGES) and len(inputs) != 1:
            raise UserError(f"{where} takes one input, got {len(inputs)}: {', '.join(inputs)}")
        known.add(layer.name)
        consumed.update(inputs)
    dead = [layer.name for layer in architecture.layers[:-1] if layer.name not in consumed]
    if dead:
        raise UserError(f"{source}: layer {dead[0]} feeds no other layer; the model has one output, "
                        f"the last layer ({architecture.layers[-1].name})")


def _merged_shape(layer: Layer, shapes: list[tuple[int, ...]], where: str) -> tuple[int, ...]:
    if isinstance(layer, Add):
        if any(shape != shapes[0] for shape in shapes):
            raise UserError(f"{where} adds tensors of different shapes: {', '.join(map(str, shapes))}")
        return shapes[0]
    if len({len(shape) for shape in shapes}) != 1 or len({shape[:-1] for shape in shapes}) != 1:
        raise UserError(f"{where} concatenates channels of tensors whose other axes differ: "
                        f"{', '.join(map(str, shapes))}")
    return (*shapes[0][:-1], sum(shape[-1] for shape in shapes))


def output_shapes(architecture: Architecture, input_shape: tuple[int, int, int],
                  source: str = "architecture") -> list[tuple[int, ...]]:
    """Each layer's output shape in Keras's layout ((H, W, C) or (features,)); refuses impossible stacks."""
    check_graph(architecture, source)
    shape_of: dict[str, tuple[int, ...]] = {INPUT: tuple(input_shape)}
    flat_order = {INPUT: False}  # features in flatten's order, not yet mixed by a Dense
    shapes = []
    for index, layer in enumerate(architecture.layers):
        kind = type(layer).__name__
        where = f"{source}: layer {layer.name} ({kind})"
        inputs = architecture.inputs_of(index)
        shape, after_flatten = shape_of[inputs[0]], flat_order[inputs[0]]
        needs_map = isinstance(layer, (Conv2D, DepthwiseConv2D, ZeroPadding2D, MaxPooling2D, AveragePooling2D,
                                       GlobalAveragePooling2D, Flatten))
        if needs_map and len(shape) != 3:
            raise UserError(f"{where} needs a feature map, but its input has shape {shape}")
        if isinstance(layer, Dense) and len(shape) != 1:
            raise UserError(f"{where} on a feature map of shape {shape}: put Flatten or "
                            f"GlobalAveragePooling2D before it (Dense over the last axis is not supported)")
        if isinstance(layer, BatchNormalization) and after_flatten:
            raise UserError(f"{where} directly after Flatten is not supported (its statistics would be "
                            f"per pixel and channel); put it after a Conv2D or a Dense")
        if isinstance(layer, MERGES):
            if any(flat_order[name] for name in inputs):
                raise UserError(f"{where} on Flatten's output is not supported (PyTorch flattens in another "
                                f"order); merge the feature maps before Flatten, or after a Dense")
            shape = _merged_shape(layer, [shape_of[name] for name in inputs], where)
        elif isinstance(layer, Conv2D):
            spatial = [_window_output(shape[i], layer.kernel_size[i], layer.strides[i], layer.padding) for i in (0, 1)]
            shape = (*spatial, layer.filters)
        elif isinstance(layer, DepthwiseConv2D):
            spatial = [_window_output(shape[i], layer.kernel_size[i], layer.strides[i], layer.padding) for i in (0, 1)]
            shape = (*spatial, shape[2] * layer.depth_multiplier)
        elif isinstance(layer, ZeroPadding2D):
            shape = (shape[0] + sum(layer.padding[0]), shape[1] + sum(layer.padding[1]), shape[2])
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
        shape_of[layer.name], flat_order[layer.name] = shape, after_flatten
        shapes.append(shape)
    return shapes


def last_activation(architecture: Architecture) -> str | None:
    last = architecture.layers[-1] if architecture.layers else None
    if isinstance(last, (Softmax, ReLU)):
        return type(last).__name__.lower()
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
        if not name or "." in name or names.count(name) > 1 or name == INPUT:
            raise UserError(f"{source}: layer name {name!r} must be non-empty, unique, without '.' and not {INPUT!r}")
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
