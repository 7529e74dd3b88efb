"""A `.keras` file's `config.json` as the description, read without Keras and keeping the file's own
layer names. Anything outside the family (a layer class, an option such as a dilation rate, a
regularizer, a frozen layer) is refused with the layer's class, name and option, before anything is built."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from cifar_common.errors import UserError
from cifar_common.spec.layers import Architecture, Layer, make_layer

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
