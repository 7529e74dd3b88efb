"""The network as data: one description that both frameworks build, convert and compare by.

An `Architecture` is a name and a sequence of layers, each a frozen dataclass named after its Keras
class, whose fields are that class's constructor arguments (so the Keras builder passes them through
and the port maps each one). It comes from three places:

- a YAML `architecture` section in the compact form (conv blocks, a head, dense layers, classes),
  expanded here into layers with derived names (conv1, pool1, dropout1, ..., flatten, dense1, ...);
- a YAML `architecture` section in the explicit form (`layers:` one mapping per layer, as
  `RunConfig.to_dict` and `python -m cifar_common.describe_keras` write it);
- a `.keras` file's `config.json`, keeping the file's own layer names. Anything outside the
  family (a layer class, an option such as a dilation rate, a regularizer, a frozen layer) is refused
  with the layer's class, name and option, before anything is built.

The fingerprint hashes the layers without their names, so the same network has one fingerprint
whichever form or file it came from.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from cifar_common.errors import UserError

ACTIVATIONS = ("relu", "elu", "tanh", "sigmoid", "softmax", "linear")
PADDINGS = ("same", "valid")
POOLS = ("max", "average", "none")
HEADS = ("flatten", "global_average")


@dataclass(frozen=True)
class Conv2D:
    name: str
    filters: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "same"  # TensorFlow's: with stride > 1 or an even kernel the extra row/column goes bottom/right
    activation: str = "relu"
    use_bias: bool = True


@dataclass(frozen=True)
class BatchNormalization:
    name: str
    momentum: float = 0.99  # Keras's meaning: moving = momentum * moving + (1 - momentum) * batch
    epsilon: float = 1e-3


@dataclass(frozen=True)
class Activation:
    name: str
    activation: str


@dataclass(frozen=True)
class _Pooling2D:
    name: str
    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (2, 2)  # Keras's None means pool_size; stored explicitly


@dataclass(frozen=True)
class MaxPooling2D(_Pooling2D):
    pass


@dataclass(frozen=True)
class AveragePooling2D(_Pooling2D):
    pass


@dataclass(frozen=True)
class GlobalAveragePooling2D:
    name: str


@dataclass(frozen=True)
class Dropout:
    name: str
    rate: float


@dataclass(frozen=True)
class Flatten:
    name: str


@dataclass(frozen=True)
class Dense:
    name: str
    units: int
    activation: str = "relu"
    use_bias: bool = True


@dataclass(frozen=True)
class DepthwiseConv2D:
    name: str
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "same"  # TensorFlow's, as Conv2D's
    depth_multiplier: int = 1  # output channels per input channel (channel c's outputs are c*m ... c*m + m - 1)
    activation: str = "linear"
    use_bias: bool = True


@dataclass(frozen=True)
class ZeroPadding2D:
    name: str
    padding: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, 1))  # ((top, bottom), (left, right))


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class Softmax:
    name: str  # over the channels (Keras's axis -1)


@dataclass(frozen=True)
class Add:
    name: str


@dataclass(frozen=True)
class Concatenate:
    name: str
    axis: int = -1  # the channels (NHWC's last axis); no other axis is supported


Layer = Union[Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
              Dropout, Flatten, Dense, DepthwiseConv2D, ZeroPadding2D, ReLU, Softmax, Add, Concatenate]
LAYER_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Dropout,
    Flatten, Dense, DepthwiseConv2D, ZeroPadding2D, ReLU, Softmax, Add, Concatenate)}
MERGES = (Add, Concatenate)  # the layers that take several inputs
PAIRS = ("kernel_size", "strides", "pool_size")  # (rows, columns); YAML and Keras may give one int


def layer_options(layer: Layer) -> dict[str, Any]:
    """The layer's Keras constructor arguments, name included."""
    return {field.name: getattr(layer, field.name) for field in dataclasses.fields(layer)}


def describe(layer: Layer) -> str:
    """`Conv2D(filters=32, kernel_size=(3, 3), ...)`: a layer as a message shows it."""
    options = ", ".join(f"{k}={v!r}" for k, v in layer_options(layer).items() if k != "name")
    return f"{type(layer).__name__}({options})"


INPUT = "input"  # how `Architecture.inbound` names the model's input


def _plain(value: Any) -> Any:
    """Tuples (also nested) as lists, so YAML and JSON stay plain."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Architecture:
    """`layers` in an order in which every layer comes after the layers feeding it, the output last.
    `inbound` makes it a graph: per layer, the names of the layers whose outputs it takes (INPUT for
    the model's input; Add and Concatenate take several). Empty for a chain, each layer fed by the one
    before it (a Sequential); a graph that is a chain is stored as one, so it has the chain's fingerprint."""
    name: str
    layers: tuple[Layer, ...]
    inbound: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        chain = tuple((self.layers[i - 1].name if i else INPUT,) for i in range(len(self.layers)))
        if tuple(map(tuple, self.inbound)) == chain:
            object.__setattr__(self, "inbound", ())

    def inputs_of(self, index: int) -> tuple[str, ...]:
        """The names of the layers feeding layer `index` (INPUT for the model's input)."""
        if self.inbound:
            return self.inbound[index]
        return (self.layers[index - 1].name if index else INPUT,)

    def to_dict(self) -> dict[str, Any]:
        """The explicit form, as config.yaml holds it (tuples as lists, so YAML stays plain); a graph's
        layers carry `inputs`."""
        layers = [{"layer": type(layer).__name__, **{k: _plain(v) for k, v in layer_options(layer).items()}}
                  for layer in self.layers]
        for entry, inputs in zip(layers, self.inbound):
            entry["inputs"] = list(inputs)
        return {"name": self.name, "layers": layers}

    @property
    def fingerprint(self) -> str:
        """12 hex digits of a hash of the layers and their options, names left out. A graph's hashes each
        layer with the hashes of its inputs, so the order its layers are listed in does not matter."""
        entries = [{k: v for k, v in layer.items() if k != "name"} for layer in self.to_dict()["layers"]]
        if not self.inbound:
            return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:12]
        digest = {INPUT: INPUT}
        for layer, entry in zip(self.layers, entries):
            entry["inputs"] = [digest[name] for name in entry["inputs"]]
            digest[layer.name] = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        return digest[self.layers[-1].name][:12]

    @property
    def has_dropout(self) -> bool:
        return any(isinstance(layer, Dropout) for layer in self.layers)

    @property
    def variant(self) -> str:
        """`dropout` when the network has Dropout layers, else `baseline` (the tutorial's two variants)."""
        return "dropout" if self.has_dropout else "baseline"


# --- shapes -------------------------------------------------------------------------------------------

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
    return "softmax" if isinstance(last, Softmax) else "relu" if isinstance(last, ReLU) else getattr(last, "activation", None)


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


# --- parsing ------------------------------------------------------------------------------------------

def _checked_value(value: Any, expected: type, where: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise UserError(f"{where} must be {expected.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise UserError(f"{where} must be a positive int or a pair of them, got {value!r}")
    return int(value[0]), int(value[1])


FIELD_TYPES = {"name": str, "filters": int, "units": int, "padding": str, "activation": str, "use_bias": bool,
               "momentum": float, "epsilon": float, "rate": float, "depth_multiplier": int, "axis": int}
CHANNEL_AXES = (-1, 3)  # Concatenate's axis: the channels of an NHWC feature map


def _padding_pairs(value: Any, where: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """ZeroPadding2D's padding: an int, (rows, columns) or ((top, bottom), (left, right)), as Keras takes it."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        value = [[value[0], value[0]], [value[1], value[1]]]
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair) for pair in value)):
        raise UserError(f"{where} must be ((top, bottom), (left, right)) of non-negative ints, got {value!r}")
    return (int(value[0][0]), int(value[0][1])), (int(value[1][0]), int(value[1][1]))


def make_layer(kind: str, options: dict[str, Any], where: str) -> Layer:
    """A layer from its Keras class name and options (names and types checked, values range-checked)."""
    cls = LAYER_CLASSES.get(kind)
    if cls is None:
        raise UserError(f"{where}: layer class {kind!r} is not in the family (supported: {', '.join(LAYER_CLASSES)})")
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"{where}: unknown option '{unknown[0]}' for {kind} (known: {', '.join(sorted(fields))})")
    values = {}
    for key, value in options.items():
        at = f"{where}: {kind} option '{key}'"
        if cls is ZeroPadding2D and key == "padding":
            values[key] = _padding_pairs(value, at)
        else:
            values[key] = _pair(value, at) if key in PAIRS else _checked_value(value, FIELD_TYPES[key], at)
    if cls is Concatenate and values.get("axis", -1) not in CHANNEL_AXES:
        raise UserError(f"{where}: Concatenate {values.get('name')} on axis {values['axis']}: only the channels "
                        f"axis (-1, NHWC's 3; PyTorch's dim 1) is supported")
    if cls is Concatenate:
        values["axis"] = -1  # 3 is the same axis: one description, one fingerprint
    if cls in (MaxPooling2D, AveragePooling2D) and "strides" not in values and "pool_size" in values:
        values["strides"] = values["pool_size"]  # Keras's strides=None
    try:
        layer = cls(**values)
    except TypeError:
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in values and f.default is dataclasses.MISSING)
        raise UserError(f"{where}: {kind} needs '{missing[0]}'") from None
    _check_ranges(layer, where)
    return layer


def _check_ranges(layer: Layer, where: str) -> None:
    at = f"{where}: {type(layer).__name__} {layer.name}"
    if getattr(layer, "activation", "relu") not in ACTIVATIONS:
        raise UserError(f"{at}: activation {layer.activation!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    if not isinstance(layer, ZeroPadding2D) and getattr(layer, "padding", "same") not in PADDINGS:
        raise UserError(f"{at}: padding {layer.padding!r} is not supported (supported: same, valid)")
    for key in ("filters", "units", "depth_multiplier"):
        if getattr(layer, key, 1) < 1:
            raise UserError(f"{at}: {key} must be positive, got {getattr(layer, key)}")
    if isinstance(layer, Dropout) and not 0.0 <= layer.rate < 1.0:
        raise UserError(f"{at}: rate must be in [0, 1), got {layer.rate}")
    if isinstance(layer, BatchNormalization) and not (0.0 <= layer.momentum < 1.0 and 0.0 < layer.epsilon < math.inf):
        raise UserError(f"{at}: momentum must be in [0, 1) and epsilon positive, got {layer.momentum}, {layer.epsilon}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping, got {value!r}")
    return value


def _settings(values: dict[str, Any], defaults: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise UserError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(defaults)})")
    merged = {**defaults, **values}
    for key, default in defaults.items():
        if default is REQUIRED_INT and key not in values:
            raise UserError(f"{where}: setting '{key}' is required")
        expected = int if default is REQUIRED_INT else type(default)
        merged[key] = _pair(merged[key], f"{where}.{key}") if key in PAIRS else \
            _checked_value(merged[key], expected, f"{where}: setting '{key}'")
    return merged


REQUIRED_INT = object()  # a setting without a default
BLOCK_DEFAULTS = {"filters": REQUIRED_INT, "convs": 2, "kernel_size": 3, "strides": 1, "padding": "same",
                  "activation": "relu", "use_bias": True, "batch_norm": False, "pool": "max",
                  "pool_size": 2, "dropout": 0.0}
DENSE_DEFAULTS = {"units": REQUIRED_INT, "activation": "relu", "use_bias": True, "batch_norm": False, "dropout": 0.0}
COMPACT_KEYS = ("name", "conv_blocks", "head", "dense", "classes")


def _with_activation(cls: type, activation: str, batch_norm: bool, options: dict[str, Any]) -> list[Layer]:
    """A conv or dense layer, or with `batch_norm` the Keras idiom: linear layer, BatchNormalization, Activation."""
    if not batch_norm:
        return [cls(**options, activation=activation)]
    name = options["name"]
    return [cls(**options, activation="linear"), BatchNormalization(f"{name}_bn"),
            Activation(f"{name}_{activation}", activation)]


def expand_compact(section: dict[str, Any], where: str) -> Architecture:
    """The compact form (blocks, head, dense layers, classes) as layers with the tutorial's naming."""
    unknown = sorted(set(section) - set(COMPACT_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(COMPACT_KEYS)}, or 'layers')")
    name = _checked_value(section.get("name", "custom"), str, f"{where}: setting 'name'")
    blocks = section.get("conv_blocks") or []
    dense = section.get("dense") or []
    if not isinstance(blocks, list) or not isinstance(dense, list):
        raise UserError(f"{where}: 'conv_blocks' and 'dense' must be lists")
    head = _checked_value(section.get("head", "flatten"), str, f"{where}: setting 'head'")
    if head not in HEADS:
        raise UserError(f"{where}: head {head!r} is not supported (supported: {', '.join(HEADS)})")
    if "classes" not in section:
        raise UserError(f"{where}: setting 'classes' is required (units of the last, softmax Dense)")
    classes = _checked_value(section["classes"], int, f"{where}: setting 'classes'")
    count = {"conv": 0, "pool": 0, "dropout": 0, "dense": 0}

    def next_name(kind: str) -> str:
        count[kind] += 1
        return f"{kind}{count[kind]}"

    def dropout(rate: float) -> list[Layer]:
        return [Dropout(next_name("dropout"), rate)] if rate > 0 else []

    layers: list[Layer] = []
    for index, raw in enumerate(blocks):
        at = f"{where}.conv_blocks[{index}]"
        block = _settings(_mapping(raw, at), BLOCK_DEFAULTS, at)
        if block["pool"] not in POOLS:
            raise UserError(f"{at}: pool {block['pool']!r} is not supported (supported: {', '.join(POOLS)})")
        if block["convs"] < 1:
            raise UserError(f"{at}: convs must be at least 1, got {block['convs']}")
        for conv in range(block["convs"]):
            conv_name = next_name("conv")
            options = {"name": conv_name, "filters": block["filters"], "kernel_size": block["kernel_size"],
                       "strides": block["strides"] if conv == 0 else (1, 1), "padding": block["padding"],
                       "use_bias": block["use_bias"]}
            layers += _with_activation(Conv2D, block["activation"], block["batch_norm"], options)
        if block["pool"] != "none":
            pool_cls = MaxPooling2D if block["pool"] == "max" else AveragePooling2D
            layers.append(pool_cls(next_name("pool"), block["pool_size"], block["pool_size"]))
        layers += dropout(block["dropout"])
    layers.append(Flatten("flatten") if head == "flatten" else GlobalAveragePooling2D("global_pool"))
    for index, raw in enumerate(dense):
        at = f"{where}.dense[{index}]"
        spec = _settings(_mapping(raw, at), DENSE_DEFAULTS, at)
        dense_name = next_name("dense")
        options = {"name": dense_name, "units": spec["units"], "use_bias": spec["use_bias"]}
        layers += _with_activation(Dense, spec["activation"], spec["batch_norm"], options)
        layers += dropout(spec["dropout"])
    layers.append(Dense(next_name("dense"), classes, activation="softmax"))
    for layer in layers:
        _check_ranges(layer, where)
    return Architecture(name, tuple(layers))


def parse_architecture(section: Any, where: str) -> Architecture:
    """The YAML `architecture` section, in the compact or the explicit (`layers:`) form."""
    section = _mapping(section, where)
    if "layers" not in section:
        return expand_compact(section, where)
    unknown = sorted(set(section) - {"name", "layers"})
    if unknown:
        raise UserError(f"{where}: with 'layers', the only other setting is 'name' (got '{unknown[0]}')")
    name = _checked_value(section.get("name", "custom"), str, f"{where}: setting 'name'")
    if not isinstance(section["layers"], list):
        raise UserError(f"{where}: 'layers' must be a list of mappings")
    layers, inbound = [], []
    for index, raw in enumerate(section["layers"]):
        at = f"{where}.layers[{index}]"
        options = dict(_mapping(raw, at))
        kind = options.pop("layer", None)
        # `inputs` (a graph's): the layers feeding this one; without it, the layer before (or the input)
        inputs = options.pop("inputs", [layers[-1].name if layers else INPUT])
        if not (isinstance(inputs, list) and inputs and all(isinstance(n, str) for n in inputs)):
            raise UserError(f"{at}: 'inputs' must be a list of layer names (or {INPUT!r}), got {inputs!r}")
        layers.append(make_layer(str(kind), options, at))
        inbound.append(tuple(inputs))
    return Architecture(name, tuple(layers), tuple(inbound))


# --- from a .keras file's config.json -----------------------------------------------------------------

MAPPED = {  # Keras config keys that become the description's options
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "activation", "use_bias"),
    "Dense": ("units", "activation", "use_bias"),
    "BatchNormalization": ("momentum", "epsilon"),
    "Activation": ("activation",),
    "MaxPooling2D": ("pool_size", "strides"),
    "AveragePooling2D": ("pool_size", "strides"),
    "GlobalAveragePooling2D": (),
    "Dropout": ("rate",),
    "Flatten": (),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "depth_multiplier", "activation", "use_bias"),
    "ZeroPadding2D": ("padding",),
    "ReLU": (),
    "Softmax": (),
    "Add": (),
    "Concatenate": ("axis",),
}
REQUIRED = {  # Keras config keys whose value must be this one (anything else changes training or the forward pass)
    "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "padding@pool": "valid",
    "axis": -1, "center": True, "scale": True, "renorm": False, "synchronized": False, "keepdims": False,
    "trainable": True, "noise_shape": None,
    "kernel_initializer": "GlorotUniform", "bias_initializer": "Zeros", "beta_initializer": "Zeros",
    "gamma_initializer": "Ones", "moving_mean_initializer": "Zeros", "moving_variance_initializer": "Ones",
    "depthwise_initializer": "GlorotUniform", "max_value": None, "negative_slope": 0.0, "threshold": 0.0,
}
IGNORED = ("name", "dtype", "seed", "renorm_clipping", "renorm_momentum")  # no effect, or checked elsewhere


def _comparable(key: str, value: Any) -> Any:
    if key.endswith("_initializer") and isinstance(value, dict):
        return value.get("class_name")  # the initializer's seed does not change its distribution
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _dtype_name(dtype: Any) -> Any:
    return dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype


def layer_from_keras(entry: dict[str, Any], source: str) -> Layer:
    """One `config.json` layer as the description's layer, or a UserError naming what is unsupported."""
    kind = entry.get("class_name")
    config = entry.get("config", {})
    name = config.get("name", "?")
    at = f"{source}: layer {name!r} ({kind})"
    if kind == "Lambda":
        raise UserError(f"{at}: a Lambda layer holds Python code, which cannot be read from the file nor "
                        f"translated; write it with built-in layers")
    if kind in MODEL_CLASSES:
        raise UserError(f"{at} is a nested model; build the model from its layers directly")
    if entry.get("registered_name") or not str(entry.get("module", "keras.layers")).startswith("keras"):
        raise UserError(f"{at} is a custom layer class ({entry.get('registered_name') or entry.get('module')}); "
                        f"its code is not in the file: write it with built-in layers")
    if kind not in MAPPED:
        raise UserError(f"{at} is outside the supported family ({', '.join(MAPPED)}); "
                        f"docs/architectures.md lists each layer and option")
    if _dtype_name(config.get("dtype", "float32")) not in ("float32", None):
        raise UserError(f"{at}: dtype policy {_dtype_name(config['dtype'])!r} is not supported (float32 only)")
    options = {"name": name}
    for key, value in config.items():
        if key in IGNORED:
            continue
        if key in MAPPED[kind]:
            if not (key == "strides" and value is None):
                options[key] = value
            continue
        required_key = "padding@pool" if key == "padding" else key
        if required_key in REQUIRED:
            if _comparable(key, value) != REQUIRED[required_key]:
                raise UserError(f"{at}: option {key}={_comparable(key, value)!r} is not supported "
                                f"(the port supports only {key}={REQUIRED[required_key]!r})")
        elif value is not None:  # regularizers, constraints, LoRA, quantization...: only when off
            shown = value.get("class_name", value) if isinstance(value, dict) else value
            raise UserError(f"{at}: option {key}={shown!r} is not supported (only {key}=None is): it "
                            f"changes training, and the port does not reproduce it")
    return make_layer(kind, options, source)


def input_shape_from_keras(config: dict[str, Any], source: str) -> tuple[int, ...]:
    layers = config.get("config", {}).get("layers", [])
    first = layers[0] if layers else {}
    shape = first.get("config", {}).get("batch_shape") if first.get("class_name") == "InputLayer" \
        else first.get("build_config", {}).get("input_shape")
    if not shape:
        raise UserError(f"{source}: the model has no input shape; build it with keras.Input((32, 32, 3)) first")
    return tuple(shape[1:])


MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _tensor_names(value: Any) -> list[tuple[str, int]] | None:
    """(layer, node index) of each Keras tensor in a node's argument (one tensor or a list), None if not tensors."""
    tensors = value if isinstance(value, list) else [value]
    if not tensors or not all(isinstance(t, dict) and t.get("class_name") == "__keras_tensor__" for t in tensors):
        return None
    return [(str(t["config"]["keras_history"][0]), int(t["config"]["keras_history"][1])) for t in tensors]


def _single_endpoint(value: Any, which: str, source: str) -> str:
    """The one input (or output) layer of a functional model: `[name, 0, 0]`, or a list of one such."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
        count = len(value) if isinstance(value, list) else "?"
        raise UserError(f"{source}: the model has {count} {which}s; only models with one {which} are supported")
    return value[0]


def graph_from_functional(body: dict[str, Any], source: str) -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
    """A functional model's layer entries (InputLayer left out) and, for each, the layers feeding it
    (INPUT for the model's input), read from each layer's `inbound_nodes`."""
    input_name = _single_endpoint(body.get("input_layers"), "input", source)
    output_name = _single_endpoint(body.get("output_layers"), "output", source)
    entries, inbound = [], []
    for entry in body.get("layers", []):
        kind, name = entry.get("class_name"), entry.get("config", {}).get("name", entry.get("name", "?"))
        if kind == "InputLayer":
            if name != input_name:
                raise UserError(f"{source}: input layer {name!r} besides {input_name!r}: only models with one "
                                f"input are supported")
            continue
        at = f"{source}: layer {name!r} ({kind})"
        nodes = entry.get("inbound_nodes", [])
        if len(nodes) != 1:
            raise UserError(f"{at} is called {len(nodes)} times (shared weights); only layers called once "
                            f"are supported: give each call its own layer")
        args, kwargs = nodes[0].get("args", []), nodes[0].get("kwargs", {})
        sources = _tensor_names(args[0]) if len(args) == 1 else None
        if sources is None:
            raise UserError(f"{at} is called with arguments other than Keras tensors ({args!r:.80}); "
                            f"only a tensor (or a list of them, to merge) is supported")
        extra = {key: value for key, value in kwargs.items() if value is not None}
        if extra:
            raise UserError(f"{at} is called with {', '.join(f'{k}={v!r}' for k, v in extra.items())}: not "
                            f"supported (it changes what the layer computes)")
        if any(node for _, node in sources):
            raise UserError(f"{at} takes the output of a layer called more than once (shared weights): not supported")
        inbound.append(tuple(INPUT if layer == input_name else layer for layer, _ in sources))
        entries.append(entry)
    if not entries or entries[-1].get("config", {}).get("name") != output_name:
        raise UserError(f"{source}: the output layer {output_name!r} is not the last of the file's layers; "
                        f"only models whose layers all lead to the one output are supported")
    return entries, inbound


def architecture_from_keras_config(config: dict[str, Any], source: str) -> tuple[Architecture, tuple[int, ...]]:
    """A Keras 3 `Sequential` or functional model's config.json as (architecture, input shape (H, W, C))."""
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional"):
        raise UserError(f"{source}: a {kind} model; only keras.Sequential and functional keras.Model models are "
                        f"supported (a subclassed model's code is not in the file)")
    body = config.get("config", {})
    if _dtype_name(body.get("dtype", "float32")) not in ("float32", None):
        raise UserError(f"{source}: dtype policy {_dtype_name(body['dtype'])!r} is not supported (float32 only)")
    if body.get("trainable", True) is not True:
        raise UserError(f"{source}: the model is frozen (trainable=False); the port trains every layer")
    if kind == "Functional":
        entries, inbound = graph_from_functional(body, source)
    else:
        entries, inbound = [entry for entry in body.get("layers", []) if entry.get("class_name") != "InputLayer"], []
    layers = tuple(layer_from_keras(entry, source) for entry in entries)
    architecture = Architecture(str(body.get("name", "keras_model")), layers, tuple(inbound))
    check_graph(architecture, source)
    return architecture, input_shape_from_keras(config, source)


def unreadable_keras_file(path: Path, error: Exception) -> UserError:
    return UserError(f"{path}: not a readable .keras file ({type(error).__name__}: {error}); "
                     f"save the model with model.save('name.keras') under Keras 3")


def read_keras_config(path: str | Path) -> dict[str, Any]:
    """The `config.json` of a `.keras` file (a zip), read without Keras."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as error:
        raise unreadable_keras_file(path, error) from None


def architecture_of_keras_file(path: str | Path) -> tuple[Architecture, tuple[int, ...]]:
    """The architecture a `.keras` file describes, with its input shape; refuses what is outside the family."""
    return architecture_from_keras_config(read_keras_config(path), str(path))
