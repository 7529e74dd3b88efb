"""The network as data: the layer types (each a frozen dataclass named after its Keras class, whose
fields are that class's constructor arguments), the `Architecture` and its fingerprint, and the checked
construction of one layer from its class name and options that both readers use.

The fingerprint hashes the layers without their names, so the same network has one fingerprint
whichever form or file it came from. The readers: `yaml_form` (the configs' `architecture` section)
and `keras_config` (a `.keras` file); `shapes` infers each layer's output and refuses impossible stacks.
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


Layer = Union[Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
              Dropout, Flatten, Dense]
LAYER_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Dropout,
    Flatten, Dense)}
PAIRS = ("kernel_size", "strides", "pool_size")  # (rows, columns); YAML and Keras may give one int


def layer_options(layer: Layer) -> dict[str, Any]:
    """The layer's Keras constructor arguments, name included."""
    return {field.name: getattr(layer, field.name) for field in dataclasses.fields(layer)}


def describe(layer: Layer) -> str:
    """`Conv2D(filters=32, kernel_size=(3, 3), ...)`: a layer as a message shows it."""
    options = ", ".join(f"{k}={v!r}" for k, v in layer_options(layer).items() if k != "name")
    return f"{type(layer).__name__}({options})"


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: tuple[Layer, ...]

    def to_dict(self) -> dict[str, Any]:
        """The explicit form, as config.yaml holds it (tuples as lists, so YAML stays plain)."""
        return {"name": self.name, "layers": [
            {"layer": type(layer).__name__,
             **{k: list(v) if isinstance(v, tuple) else v for k, v in layer_options(layer).items()}}
            for layer in self.layers]}

    @property
    def fingerprint(self) -> str:
        """12 hex digits of a hash of the layers and their options, names left out."""
        structure = [{k: v for k, v in layer.items() if k != "name"} for layer in self.to_dict()["layers"]]
        return hashlib.sha256(json.dumps(structure, sort_keys=True).encode()).hexdigest()[:12]

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
               "momentum": float, "epsilon": float, "rate": float}


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
        values[key] = pair(value, at) if key in PAIRS else checked_value(value, FIELD_TYPES[key], at)
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
    if getattr(layer, "padding", "same") not in PADDINGS:
        raise UserError(f"{at}: padding {layer.padding!r} is not supported (supported: same, valid)")
    for key in ("filters", "units"):
        if getattr(layer, key, 1) < 1:
            raise UserError(f"{at}: {key} must be positive, got {getattr(layer, key)}")
    if isinstance(layer, Dropout) and not 0.0 <= layer.rate < 1.0:
        raise UserError(f"{at}: rate must be in [0, 1), got {layer.rate}")
    if isinstance(layer, BatchNormalization) and not (0.0 <= layer.momentum < 1.0 and 0.0 < layer.epsilon < math.inf):
        raise UserError(f"{at}: momentum must be in [0, 1) and epsilon positive, got {layer.momentum}, {layer.epsilon}")
