"""Weights between Keras arrays (and `.keras` files) and the Lightning port, without TensorFlow.

Keras arrays are keyed "<layer>/kernel" and "<layer>/bias" with Keras layouts:
conv kernel (kh, kw, in, out) <-> PyTorch (out, in, kh, kw); dense kernel (in, out) <-> (out, in).
Keras flattens NHWC feature maps in (H, W, C) order and PyTorch NCHW ones in (C, H, W) order, so
the first dense kernel's input axis is permuted as well as transposed.

A `.keras` file is a zip holding `config.json` (the layers in order) and `model.weights.h5`,
whose groups are named by layer class in creation order (`conv2d`, `conv2d_1`, ..., `dense_1`),
not by layer name; h5py reads it.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from cifar_common.errors import UserError
from lightning_impl.network import CifarCNN

WEIGHT_LAYERS = {"Conv2D": nn.Conv2d, "Dense": nn.Linear}


def _weight_modules(network: CifarCNN) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in network.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _first_dense(network: CifarCNN) -> str:
    return next(name for name, m in network.named_children() if isinstance(m, nn.Linear))


def kernel_to_torch(kernel: np.ndarray, feature_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """A Keras kernel in PyTorch's layout; `feature_shape` (C, H, W) marks the dense after flatten."""
    if kernel.ndim == 4:
        return kernel.transpose(3, 2, 0, 1)
    if feature_shape is None:
        return kernel.T
    c, h, w = feature_shape
    return kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)


def kernel_to_keras(weight: np.ndarray, feature_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """The inverse of `kernel_to_torch`."""
    if weight.ndim == 4:
        return weight.transpose(2, 3, 1, 0)
    if feature_shape is None:
        return weight.T
    c, h, w = feature_shape
    return weight.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)


def to_keras_arrays(network: CifarCNN, gradients: bool = False) -> dict[str, np.ndarray]:
    """The network's weights (or, with `gradients`, their .grad) as Keras arrays."""
    def value(t: torch.Tensor) -> np.ndarray:
        return (t.grad if gradients else t).detach().cpu().numpy().copy()

    arrays = {}
    first_dense = _first_dense(network)
    for name, module in _weight_modules(network):
        feature_shape = network.feature_shape if name == first_dense else None
        arrays[f"{name}/kernel"] = kernel_to_keras(value(module.weight), feature_shape)
        arrays[f"{name}/bias"] = value(module.bias)
    return arrays


def load_keras_arrays(network: CifarCNN, arrays: dict[str, np.ndarray]) -> None:
    """Copy Keras arrays into the network, checking every shape first (nothing is copied on a mismatch)."""
    first_dense = _first_dense(network)
    updates = []
    for name, module in _weight_modules(network):
        feature_shape = network.feature_shape if name == first_dense else None
        expected_kernel = kernel_to_keras(module.weight.detach().numpy(), feature_shape).shape
        for part, expected in (("kernel", expected_kernel), ("bias", tuple(module.bias.shape))):
            key = f"{name}/{part}"
            if key not in arrays:
                raise UserError(f"layer {name}: no {part} in the Keras weights (found: {', '.join(sorted(arrays))})")
            if tuple(arrays[key].shape) != tuple(expected):
                raise UserError(f"layer {name}: {part} shape {tuple(arrays[key].shape)} in the Keras weights "
                                f"does not match {tuple(expected)} in the port")
        kernel = kernel_to_torch(np.asarray(arrays[f"{name}/kernel"], dtype=np.float32), feature_shape)
        updates.append((module, kernel, np.asarray(arrays[f"{name}/bias"], dtype=np.float32)))
    with torch.no_grad():
        for module, kernel, bias in updates:
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            module.bias.copy_(torch.from_numpy(bias))


def _snake_case(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower().replace("2_d", "2d")


def read_keras_file(path: str | Path, network: CifarCNN) -> dict[str, np.ndarray]:
    """The weights of a `.keras` file, keyed by the port's layer names (weight layers matched in order)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
                return _arrays_from_h5(config, h5, network, path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a readable .keras file ({type(error).__name__}: {error}); "
                        f"save the model with model.save('name.keras') under Keras 3") from None


def _arrays_from_h5(config: dict, h5: h5py.File, network: CifarCNN, path: Path) -> dict[str, np.ndarray]:
    layers = config.get("config", {}).get("layers", [])
    seen: dict[str, int] = {}
    file_layers = []  # (layer name in the file, h5 group) of each weight layer, in order
    for layer in layers:
        cls = layer.get("class_name")
        group = _snake_case(cls) + (f"_{seen[cls]}" if seen.get(cls) else "")
        seen[cls] = seen.get(cls, 0) + 1
        if cls in WEIGHT_LAYERS:
            file_layers.append((layer["config"]["name"], cls, f"layers/{group}/vars"))
    port_layers = _weight_modules(network)
    for (file_name, cls, _), (port_name, module) in zip(file_layers, port_layers):
        if not isinstance(module, WEIGHT_LAYERS[cls]):
            raise UserError(f"{path}: layer {file_name} is {cls}, the port's {port_name} is "
                            f"{type(module).__name__}: not the same architecture")
    if len(file_layers) != len(port_layers):
        raise UserError(f"{path}: {len(file_layers)} conv/dense layers in the file, {len(port_layers)} in the port "
                        f"({', '.join(n for n, _ in port_layers)}): not the same architecture")
    arrays = {}
    for (file_name, _, group), (port_name, _) in zip(file_layers, port_layers):
        if group not in h5:
            raise UserError(f"{path}: weights of layer {file_name} ({group}) are missing")
        arrays[f"{port_name}/kernel"] = np.array(h5[group]["0"])
        arrays[f"{port_name}/bias"] = np.array(h5[group]["1"])
    return arrays


def load_keras_file(path: str | Path, network: CifarCNN) -> None:
    """Load a `.keras` file's weights into the network; a wrong architecture names the layer and shapes."""
    arrays = read_keras_file(path, network)
    try:
        load_keras_arrays(network, arrays)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
