"""The tutorial's network as a plain `nn.Module`, initialised the way Keras initialises it.

Modules carry the Keras layer names (conv1 … dense2); each conv and dense1 is followed by a
`<name>_relu` module, because Keras folds the activation into the layer. The network returns
logits: softmax is applied when predicting, and the loss works on logits as TensorFlow's does.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cifar_common.config import DatasetConfig

CONV_BLOCKS = ((32, "conv1", "conv2", "pool1", "dropout1"),
               (64, "conv3", "conv4", "pool2", "dropout2"),
               (64, "conv5", "conv6", "pool3", "dropout3"))
POOL_DROPOUT = 0.25
DENSE_DROPOUT = 0.5
DENSE_UNITS = 512


class CifarCNN(nn.Sequential):
    def __init__(self, dropout: bool, dataset: DatasetConfig = DatasetConfig()):
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        channels = dataset.channels
        for filters, conv_a, conv_b, pool, drop in CONV_BLOCKS:
            for name in (conv_a, conv_b):
                modules[name] = nn.Conv2d(channels, filters, 3, padding=1)  # 'same' for 3x3 stride 1
                modules[f"{name}_relu"] = nn.ReLU()
                channels = filters
            modules[pool] = nn.MaxPool2d(2)
            if dropout:
                modules[drop] = nn.Dropout(POOL_DROPOUT)  # element-wise, like Keras (not Dropout2d)
        side = dataset.image_size // 2 ** len(CONV_BLOCKS)
        modules["flatten"] = nn.Flatten()
        modules["dense1"] = nn.Linear(channels * side * side, DENSE_UNITS)
        modules["dense1_relu"] = nn.ReLU()
        if dropout:
            modules["dropout4"] = nn.Dropout(DENSE_DROPOUT)
        modules["dense2"] = nn.Linear(DENSE_UNITS, dataset.num_classes)
        super().__init__(modules)
        self.dropout = dropout
        self.feature_shape = (channels, side, side)  # what `flatten` flattens, in NCHW
        init_like_keras(self)

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(images), dim=1)


def init_like_keras(network: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases (PyTorch's default is kaiming-uniform with random biases)."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)


def keras_layer_names(network: CifarCNN) -> list[str]:
    """The Keras layers, in order (activations belong to the layer before them)."""
    return [name for name, _ in network.named_children() if not name.endswith("_relu")]


def layer_outputs(network: CifarCNN, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
    """Each Keras layer's output (conv and dense1 after their ReLU), for per-layer comparisons."""
    outputs: OrderedDict[str, torch.Tensor] = OrderedDict()
    x = images
    for name, module in network.named_children():
        x = module(x)
        outputs[name.removesuffix("_relu")] = x
    return outputs


def layer_table(network: CifarCNN, dataset: DatasetConfig = DatasetConfig()) -> list[dict]:
    """Name, kind, output shape (without batch, NCHW), parameters and dropout rate per Keras layer."""
    probe = torch.zeros(1, dataset.channels, dataset.image_size, dataset.image_size)
    was_training = network.training
    network.eval()
    with torch.no_grad():
        outputs = layer_outputs(network, probe)
    network.train(was_training)
    modules = dict(network.named_children())
    return [{
        "name": name,
        "kind": type(modules[name]).__name__,
        "output_shape": tuple(outputs[name].shape[1:]),
        "params": sum(p.numel() for p in modules[name].parameters()),
        "rate": getattr(modules[name], "p", None),
    } for name in keras_layer_names(network)]


def to_keras_layout(name: str, activation: torch.Tensor, feature_shape: tuple[int, int, int]) -> torch.Tensor:
    """A layer output in Keras's layout: NCHW maps to NHWC, and flatten's (C, H, W) order to (H, W, C)."""
    if activation.ndim == 4:
        return activation.permute(0, 2, 3, 1)
    if name == "flatten":
        return activation.reshape(len(activation), *feature_shape).permute(0, 2, 3, 1).reshape(len(activation), -1)
    return activation


def keras_layout_outputs(network: CifarCNN, images_nhwc) -> OrderedDict[str, "np.ndarray"]:
    """Per-layer outputs in inference mode, in Keras's layout and meaning, for comparison with Keras.

    Keras's last Dense holds its softmax, so `dense2` here is the softmax of the port's logits.
    """
    images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
    was_training = network.training
    network.eval()
    with torch.no_grad():
        outputs = layer_outputs(network, images)
    network.train(was_training)
    arrays = OrderedDict((name, to_keras_layout(name, out, network.feature_shape).numpy())
                         for name, out in outputs.items())
    arrays["dense2"] = torch.softmax(outputs["dense2"], dim=1).numpy()
    return arrays
