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


# --- shapes -------------------------------------------------------------------------------------------

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
        values[key] = _pair(value, at) if key in PAIRS else _checked_value(value, FIELD_TYPES[key], at)
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
    if getattr(layer, "padding", "same") not in PADDINGS:
        raise UserError(f"{at}: padding {layer.padding!r} is not supported (supported: same, valid)")
    for key in ("filters", "units"):
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
    layers = []
    for index, raw in enumerate(section["layers"]):
        options = dict(_mapping(raw, f"{where}.layers[{index}]"))
        kind = options.pop("layer", None)
        layers.append(make_layer(str(kind), options, f"{where}.layers[{index}]"))
    return Architecture(name, tuple(layers))


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
}
REQUIRED = {  # Keras config keys whose value must be this one (anything else changes training or the forward pass)
    "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "padding@pool": "valid",
    "axis": -1, "center": True, "scale": True, "renorm": False, "synchronized": False, "keepdims": False,
    "trainable": True, "noise_shape": None,
    "kernel_initializer": "GlorotUniform", "bias_initializer": "Zeros", "beta_initializer": "Zeros",
    "gamma_initializer": "Ones", "moving_mean_initializer": "Zeros", "moving_variance_initializer": "Ones",
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


def architecture_from_keras_config(config: dict[str, Any], source: str) -> tuple[Architecture, tuple[int, ...]]:
    """A Keras 3 `Sequential`'s config.json as (architecture, input shape (H, W, C))."""
    if config.get("class_name") != "Sequential":
        raise UserError(f"{source}: a {config.get('class_name')} model; only keras.Sequential models are "
                        f"supported (rebuild the same layers as a Sequential)")
    body = config.get("config", {})
    if _dtype_name(body.get("dtype", "float32")) not in ("float32", None):
        raise UserError(f"{source}: dtype policy {_dtype_name(body['dtype'])!r} is not supported (float32 only)")
    if body.get("trainable", True) is not True:
        raise UserError(f"{source}: the model is frozen (trainable=False); the port trains every layer")
    entries = [entry for entry in body.get("layers", []) if entry.get("class_name") != "InputLayer"]
    layers = tuple(layer_from_keras(entry, source) for entry in entries)
    return Architecture(str(body.get("name", "keras_model")), layers), input_shape_from_keras(config, source)


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
