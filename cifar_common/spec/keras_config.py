"""A `.keras` file's `config.json` as the description, read without Keras and keeping the file's own
layer names: a Sequential as a chain, a functional model as a graph (each layer's `inbound_nodes`).
Anything outside the family (a layer class, an option such as a dilation rate, a regularizer, a frozen
layer, a Lambda, a shared layer) is refused with the layer's class, name and option, before anything
is built."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from cifar_common.errors import UserError
from cifar_common.spec.layers import INPUT, Architecture, Layer, make_layer
from cifar_common.spec.shapes import check_graph

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
