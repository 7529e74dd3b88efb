"""Weights between Keras arrays (and `.keras` files) and the Lightning port, without TensorFlow.

Keras arrays are keyed "<layer>/<variable>" with Keras layouts and names:
conv kernel (kh, kw, in, out) <-> PyTorch (out, in, kh, kw); dense kernel (in, out) <-> (out, in);
BatchNormalization gamma, beta, moving_mean, moving_variance <-> weight, bias, running_mean, running_var.
Keras flattens NHWC feature maps in (H, W, C) order and PyTorch NCHW ones in (C, H, W) order, so
the kernel of the Dense fed by Flatten has its input axis permuted as well as transposed.

A `.keras` file is a zip holding `config.json` (the layers in order) and `model.weights.h5`,
whose groups are named by layer class in creation order (`conv2d`, `conv2d_1`, ..., `dense_1`),
not by layer name, each holding its variables in creation order (`vars/0`, `vars/1`, ...).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from cifar_common.errors import UserError
from cifar_common.spec.keras_config import architecture_from_keras_config, read_keras_config, unreadable_keras_file
from cifar_common.spec.layers import Architecture, describe
from lightning_impl.network import CifarCNN, KerasBatchNorm

# (Keras variable, torch attribute, trainable), in the order Keras creates the variables.
VARIABLES = {
    nn.Conv2d: (("kernel", "weight", True), ("bias", "bias", True)),
    nn.Linear: (("kernel", "weight", True), ("bias", "bias", True)),
    KerasBatchNorm: (("gamma", "weight", True), ("beta", "bias", True),
                     ("moving_mean", "running_mean", False), ("moving_variance", "running_var", False)),
}


def variables_of(module: nn.Module) -> list[tuple[str, torch.Tensor, bool]]:
    """(Keras name, tensor, trainable) of each variable the module has (a conv without bias has one)."""
    for cls, names in VARIABLES.items():
        if isinstance(module, cls) or type(module).__name__ == cls.__name__:  # or a written module's copy of it
            return [(keras, getattr(module, attr), trainable) for keras, attr, trainable in names
                    if getattr(module, attr) is not None]
    return []


def _depthwise(name: str, network: CifarCNN) -> bool:
    module = network.get_submodule(name)
    return isinstance(module, nn.Conv2d) and module.groups > 1


def to_keras_layout(name: str, variable: str, value: np.ndarray, network: CifarCNN) -> np.ndarray:
    """A PyTorch tensor's value in Keras's layout."""
    if variable != "kernel":
        return value
    if value.ndim == 4 and _depthwise(name, network):  # (in * m, 1, kh, kw) -> (kh, kw, in, m)
        groups = network.get_submodule(name).groups
        return value.reshape(groups, -1, *value.shape[2:]).transpose(2, 3, 0, 1)
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if name not in network.flat_inputs:
        return value.T
    c, h, w = network.flat_inputs[name]
    return value.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)


def to_torch_layout(name: str, variable: str, value: np.ndarray, network: CifarCNN) -> np.ndarray:
    """The inverse of `to_keras_layout`."""
    if variable != "kernel":
        return value
    if value.ndim == 4 and _depthwise(name, network):  # (kh, kw, in, m) -> (in * m, 1, kh, kw)
        kh, kw, channels, multiplier = value.shape
        return value.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)
    if name not in network.flat_inputs:
        return value.T
    c, h, w = network.flat_inputs[name]
    return value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(value.shape[1], -1)


def to_keras_arrays(network: CifarCNN, gradients: bool = False) -> dict[str, np.ndarray]:
    """The network's variables (or, with `gradients`, the trainable ones' .grad) as Keras arrays."""
    arrays = {}
    for name, module in network.named_children():
        for variable, tensor, trainable in variables_of(module):
            if gradients and not trainable:
                continue
            value = (tensor.grad if gradients else tensor).detach().cpu().numpy().copy()
            arrays[f"{name}/{variable}"] = to_keras_layout(name, variable, value, network)
    return arrays


def load_keras_arrays(network: CifarCNN, arrays: dict[str, np.ndarray]) -> None:
    """Copy Keras arrays into the network, checking every shape first (nothing is copied on a mismatch)."""
    updates = []
    for name, module in network.named_children():
        for variable, tensor, _ in variables_of(module):
            key = f"{name}/{variable}"
            current = tensor.detach().cpu().numpy()
            expected = to_keras_layout(name, variable, current, network).shape
            if key not in arrays:
                raise UserError(f"layer {name}: no {variable} in the Keras weights (found: {', '.join(sorted(arrays))})")
            if tuple(arrays[key].shape) != tuple(expected):
                raise UserError(f"layer {name}: {variable} shape {tuple(arrays[key].shape)} in the Keras weights "
                                f"does not match {tuple(expected)} in the port")
            value = to_torch_layout(name, variable, np.asarray(arrays[key], dtype=current.dtype), network)
            updates.append((tensor, np.ascontiguousarray(value)))
    with torch.no_grad():
        for tensor, value in updates:
            tensor.copy_(torch.from_numpy(value))


def _snake_case(class_name: str) -> str:
    """Keras's rule for the weights file's group names: Conv2D -> conv2d, ReLU -> re_lu,
    DepthwiseConv2D -> depthwise_conv2d."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras_file(path: str | Path, network: CifarCNN) -> dict[str, np.ndarray]:
    """The variables of a `.keras` file, keyed by the port's layer names (layers matched in order).

    The file's architecture must be the network's, option for option (layer names may differ).
    """
    path = Path(path)
    config = read_keras_config(path)
    file_architecture, _ = architecture_from_keras_config(config, str(path))
    _check_same_architecture(file_architecture, network.architecture, path)
    try:
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
            return _arrays_from_h5(config, h5, network, path)
    except (KeyError, OSError, zipfile.BadZipFile) as error:
        raise unreadable_keras_file(path, error) from None


def _check_same_architecture(file_architecture: Architecture, port: Architecture, path: Path) -> None:
    for index, (theirs, ours) in enumerate(zip(file_architecture.layers, port.layers)):
        if describe(theirs) != describe(ours):
            raise UserError(f"{path}: layer {index + 1}, {theirs.name}, is {describe(theirs)}; the port's "
                            f"{ours.name} is {describe(ours)}: not the same architecture (check_parity "
                            f"builds the port from the file)")
    if len(file_architecture.layers) != len(port.layers):
        raise UserError(f"{path}: {len(file_architecture.layers)} layers in the file, {len(port.layers)} in the "
                        f"port: not the same architecture")
    if file_architecture.fingerprint != port.fingerprint:
        raise UserError(f"{path}: the same layers as the port's, connected differently: not the same architecture")


def _arrays_from_h5(config: dict, h5: h5py.File, network: CifarCNN, path: Path) -> dict[str, np.ndarray]:
    seen: dict[str, int] = {}
    groups = []  # the h5 group of each layer (InputLayer excluded), in order
    for layer in config.get("config", {}).get("layers", []):
        cls = layer.get("class_name")
        group = _snake_case(cls) + (f"_{seen[cls]}" if seen.get(cls) else "")
        seen[cls] = seen.get(cls, 0) + 1
        if cls != "InputLayer":
            groups.append((layer["config"]["name"], f"layers/{group}/vars"))
    arrays = {}
    for (file_name, group), (port_name, module) in zip(groups, network.named_children()):
        for index, (variable, _, _) in enumerate(variables_of(module)):
            key = f"{group}/{index}"
            if key not in h5:
                raise UserError(f"{path}: variable {variable} of layer {file_name} ({key}) is missing")
            arrays[f"{port_name}/{variable}"] = np.array(h5[key])
    return arrays


def load_keras_file(path: str | Path, network: CifarCNN) -> None:
    """Load a `.keras` file's weights into the network; a different architecture names the layer."""
    arrays = read_keras_file(path, network)
    try:
        load_keras_arrays(network, arrays)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
