"""The emitted network seen from outside: its attribute names, loading it from its file, and its per-layer
outputs for check_parity, read with forward hooks on its attributes (the emitted code holds nothing for
the checks: it stays the code a person would write).

Where the emitted forward does more after an attribute than the attribute itself, the hook's output is
completed the same way: the activation Keras folds into Conv2D/Dense (`F.relu(self.conv1(x))`), the
flatten after global pooling. Add and Concatenate are expressions in `forward`, not attributes: their
outputs are checked through the layers they feed. The last layer's row is the softmax of the logits.
"""
from __future__ import annotations

import importlib.util
import json
import keyword
import re
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cifar_common.errors import UserError
from cifar_common.spec.layers import (MERGES, Activation, Architecture, Conv2D, Dense, DepthwiseConv2D,
                                      GlobalAveragePooling2D, Layer, Softmax)
from lightning_impl.network import ACTIVATIONS, CifarCNN, to_keras_layout

RESERVED = {"x", "inputs", "self", "torch", "nn", "F", "L", "math", "Iterable"}  # names the emitted code uses


def attribute_names(architecture: Architecture) -> dict[str, str]:
    """Each Keras layer's attribute (and state_dict prefix) in the emitted network: its name where that is
    a Python identifier free for use, else with the offending characters replaced and a trailing `_`."""
    names: dict[str, str] = {}
    for layer in architecture.layers:
        name = re.sub(r"\W", "_", layer.name)
        if name[0].isdigit():
            name = f"layer_{name}"
        if keyword.iskeyword(name) or name in RESERVED or hasattr(nn.Module, name) or name == "training":
            name += "_"
        if name in names.values():
            raise UserError(f"layer {layer.name!r}: its Python name {name!r} is another layer's too; rename one")
        names[layer.name] = name
    return names


def leaves_out_softmax(spec: Layer) -> bool:
    """A layer that only applies softmax: as the last layer, the network returns its input (the logits)."""
    return isinstance(spec, Softmax) or (isinstance(spec, Activation) and spec.activation == "softmax")


def has_attribute(spec: Layer, is_last: bool) -> bool:
    """Whether the emitted network holds the layer as an attribute."""
    return not isinstance(spec, MERGES) and not (is_last and leaves_out_softmax(spec))


def folded_activation(spec: Layer, is_last: bool) -> str:
    """The activation `forward` applies after a layer's attribute (Keras folds it into Conv2D/Dense)."""
    if is_last or not isinstance(spec, (Conv2D, DepthwiseConv2D, Dense)):
        return "linear"
    return spec.activation


def load_network(code_path: Path) -> nn.Module:
    """The network class of an emitted file, constructed, holding the weights of the .safetensors beside it."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    weights_path = code_path.with_suffix(".safetensors")
    for path in (code_path, weights_path):
        if not path.is_file():
            raise UserError(f"{path}: no such file (keras2lightning writes <module>.py and <module>.safetensors)")
    try:
        with safe_open(str(weights_path), "pt") as weights:
            class_name = json.loads((weights.metadata() or {})["keras2lightning"])["class"]
        spec = importlib.util.spec_from_file_location(f"emitted_{code_path.stem}", code_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look classes up there
        spec.loader.exec_module(module)
        network = getattr(module, class_name)()
        network.load_state_dict(load_file(str(weights_path)))
    except Exception as error:  # whatever a damaged or edited file raises: one line, naming it
        raise UserError(f"{code_path}: cannot load the emitted network ({type(error).__name__}: {error})") from None
    return network


class AsPort(nn.Module):
    """A written network seen as the port (`CifarCNN`) is seen: its layer modules as children named by the
    Keras layers, with `architecture`, `flat_inputs` and `flat_outputs`, so the weight conversion and the
    training steps work on it unchanged; `forward` is the written network's own."""

    def __init__(self, written: nn.Module, port: CifarCNN):
        super().__init__()
        self.architecture, self.flat_inputs, self.flat_outputs = port.architecture, port.flat_inputs, port.flat_outputs
        attributes = attribute_names(port.architecture)
        for index, spec in enumerate(port.architecture.layers):
            if has_attribute(spec, index == len(port.architecture.layers) - 1):
                self.add_module(spec.name, getattr(written, attributes[spec.name]))
        self.written = [written]  # in a list: not a child, so the layers are not listed twice

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.written[0](images)

    def train(self, mode: bool = True) -> "AsPort":
        self.written[0].train(mode)
        return super().train(mode)


def layer_outputs(network: nn.Module, architecture: Architecture,
                  images: torch.Tensor) -> tuple[OrderedDict[str, torch.Tensor], torch.Tensor]:
    """(each attribute layer's output as Keras computes it, in NCHW; the logits) in the current mode."""
    attributes = attribute_names(architecture)
    last = len(architecture.layers) - 1
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for index, spec in enumerate(architecture.layers):
        if not has_attribute(spec, index == last):
            continue
        activation = ACTIVATIONS[folded_activation(spec, index == last)]()

        def keep(module, args, output, name=spec.name, activation=activation, flat=isinstance(
                spec, GlobalAveragePooling2D)):
            captured[name] = activation(torch.flatten(output, 1) if flat else output)

        hooks.append(getattr(network, attributes[spec.name]).register_forward_hook(keep))
    try:
        logits = network(images)
    finally:
        for hook in hooks:
            hook.remove()
    outputs = OrderedDict((spec.name, captured[spec.name]) for spec in architecture.layers if spec.name in captured)
    return outputs, logits


def keras_layout_outputs(network: nn.Module, port: CifarCNN, images_nhwc: np.ndarray) -> OrderedDict[str, np.ndarray]:
    """As `lightning_impl.network.keras_layout_outputs`, for an emitted network: per-layer outputs in
    inference mode and Keras's layout, the last layer's as probabilities."""
    images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
    network.eval()
    with torch.no_grad():
        outputs, logits = layer_outputs(network, port.architecture, images)
    outputs[port.architecture.layers[-1].name] = torch.softmax(logits, dim=1)
    return OrderedDict((name, to_keras_layout(out, port.flat_outputs.get(name)).numpy())
                       for name, out in outputs.items())
