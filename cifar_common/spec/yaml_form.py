"""The YAML `architecture` section: the compact form (conv blocks, a head, dense layers, classes),
expanded into layers with derived names (conv1, pool1, dropout1, ..., flatten, dense1, ...), or the
explicit form (`layers:` one mapping per layer, as `RunConfig.to_dict` and
`python -m cifar_common.spec.describe_keras` write it)."""
from __future__ import annotations

from typing import Any

from cifar_common.errors import UserError
from cifar_common.spec.layers import (HEADS, INPUT, PAIRS, POOLS, Activation, Architecture, AveragePooling2D,
                                      BatchNormalization, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D,
                                      Layer, MaxPooling2D, check_ranges, checked_value, make_layer, pair)


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
        merged[key] = pair(merged[key], f"{where}.{key}") if key in PAIRS else \
            checked_value(merged[key], expected, f"{where}: setting '{key}'")
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
    name = checked_value(section.get("name", "custom"), str, f"{where}: setting 'name'")
    blocks = section.get("conv_blocks") or []
    dense = section.get("dense") or []
    if not isinstance(blocks, list) or not isinstance(dense, list):
        raise UserError(f"{where}: 'conv_blocks' and 'dense' must be lists")
    head = checked_value(section.get("head", "flatten"), str, f"{where}: setting 'head'")
    if head not in HEADS:
        raise UserError(f"{where}: head {head!r} is not supported (supported: {', '.join(HEADS)})")
    if "classes" not in section:
        raise UserError(f"{where}: setting 'classes' is required (units of the last, softmax Dense)")
    classes = checked_value(section["classes"], int, f"{where}: setting 'classes'")
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
        check_ranges(layer, where)
    return Architecture(name, tuple(layers))


def parse_architecture(section: Any, where: str) -> Architecture:
    """The YAML `architecture` section, in the compact or the explicit (`layers:`, with `inputs:` in a
    graph) form."""
    section = _mapping(section, where)
    if "layers" not in section:
        return expand_compact(section, where)
    unknown = sorted(set(section) - {"name", "layers"})
    if unknown:
        raise UserError(f"{where}: with 'layers', the only other setting is 'name' (got '{unknown[0]}')")
    name = checked_value(section.get("name", "custom"), str, f"{where}: setting 'name'")
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
