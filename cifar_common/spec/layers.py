"""The network as data: the layer types (each a frozen dataclass named after its Keras class, whose
fields are that class's constructor arguments), the `Architecture` and its fingerprint, and the checked
construction of one layer from its class name and options that both readers use.

An `Architecture` is a chain of layers (a Sequential) or, with `inbound`, a graph (a functional
model: layers feeding several others, Add and Concatenate joining them). The fingerprint hashes the
layers without their names, so the same network has one fingerprint whichever form or file it came
from. The readers: `yaml_form` (the configs' `architecture` section) and `keras_config` (a `.keras`
file); `shapes` infers each layer's output and refuses impossible stacks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
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


def checked_value(value: Any, expected: type, where: str) -> Any:
    """A setting read from YAML or JSON, as `expected`: ints are accepted where floats are meant
    (`epochs: 1` vs `learning_rate: 1`); bools are not numbers."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise UserError(f"{where} must be {expected.__name__}, got {value!r} ({type(value).__name__})")
    return value


def pair(value: Any, where: str) -> tuple[int, int]:
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
            values[key] = pair(value, at) if key in PAIRS else checked_value(value, FIELD_TYPES[key], at)
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
    check_ranges(layer, where)
    return layer


def check_ranges(layer: Layer, where: str) -> None:
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
