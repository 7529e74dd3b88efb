"""The port's network, built by walking an architecture description, initialised as Keras initialises.

One module per Keras layer, named as the layer, so the weights, the per-layer outputs and the tables
speak of the same layers as Keras. Where PyTorch's modules differ from Keras's layers the port
uses its own (docs/architectures.md lists every difference):
- `KerasConv2d` / `KerasDense` hold the activation Keras folds into the layer, and the conv pads the
  way TensorFlow does ('same' with stride > 1 or an even kernel puts the extra pixel bottom/right);
- `KerasBatchNorm` keeps Keras's epsilon and momentum meanings and updates the moving variance with
  the biased batch variance, as Keras does (torch's BatchNorm uses the unbiased one).
The network returns logits: the softmax of the last layer is applied when predicting, and the loss
works on logits as TensorFlow's does.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cifar_common.errors import UserError
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.layers import (INPUT, Activation, Add, Architecture, AveragePooling2D, BatchNormalization,
                                      Concatenate, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                                      GlobalAveragePooling2D, Layer, MaxPooling2D, ReLU, Softmax, ZeroPadding2D)
from cifar_common.spec.shapes import same_padding, validate

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "softmax": lambda: nn.Softmax(dim=1),  # Keras's softmax is over the last axis: channels
               "linear": nn.Identity}


def conv_paddings(spec: Conv2D | DepthwiseConv2D, in_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(before, after) per spatial axis: TensorFlow's 'same' (the odd pixel bottom/right), or none."""
    return [same_padding(in_size[i], spec.kernel_size[i], spec.strides[i]) if spec.padding == "same"
            else (0, 0) for i in (0, 1)]


class KerasConv2d(nn.Conv2d):
    """Conv2D (and DepthwiseConv2D: one group per input channel, `depth_multiplier` outputs each):
    TensorFlow's padding, then the convolution, then the layer's activation."""

    def __init__(self, spec: Conv2D | DepthwiseConv2D, in_channels: int, in_size: tuple[int, int],
                 activation: nn.Module):
        pads = conv_paddings(spec, in_size)
        symmetric = all(before == after for before, after in pads)
        depthwise = isinstance(spec, DepthwiseConv2D)
        out_channels = in_channels * spec.depth_multiplier if depthwise else spec.filters
        super().__init__(in_channels, out_channels, spec.kernel_size, spec.strides, bias=spec.use_bias,
                         padding=tuple(before for before, _ in pads) if symmetric else 0,
                         groups=in_channels if depthwise else 1)
        # F.pad's order: left, right, top, bottom. Only where PyTorch's symmetric padding cannot say it.
        self.asymmetric_pad = None if symmetric else (*pads[1], *pads[0])
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.asymmetric_pad is not None:
            x = F.pad(x, self.asymmetric_pad)
        return self.activation(super().forward(x))


class KerasDense(nn.Linear):
    """Dense: the affine map, then the layer's activation."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activation: nn.Module):
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(super().forward(x))


class KerasBatchNorm(nn.Module):
    """BatchNormalization over the channel axis (dim 1), with Keras's arithmetic.

    Training: normalise with the batch mean and biased variance, and update
    moving = momentum * moving + (1 - momentum) * batch statistic, the variance biased as in Keras
    (tf.nn.moments). Inference: the moving statistics. Both as tf.nn.batch_normalization computes:
    x * (gamma / sqrt(var + epsilon)) + (beta - mean * gamma / sqrt(var + epsilon)).
    Parameters and buffers carry torch's names (weight, bias, running_mean, running_var).
    """

    def __init__(self, features: int, momentum: float = 0.99, epsilon: float = 1e-3):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.promote_types(dtype, torch.float32))  # as Keras: statistics never in 16 bits
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            axes = [0, *range(2, x.ndim)]
            mean = x.mean(dim=axes)
            var = (x - mean.view(shape).detach()).square().mean(dim=axes)  # biased, as tf.nn.moments
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_(mean, alpha=1.0 - self.momentum)
                self.running_var.mul_(self.momentum).add_(var, alpha=1.0 - self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + self.epsilon) * self.weight
        return (x * scale.view(shape) + (self.bias - mean * scale).view(shape)).to(dtype)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}, momentum={self.momentum} (Keras's meaning), epsilon={self.epsilon}"


class GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class KerasAdd(nn.Module):
    """Keras's Add: the inputs summed in order."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total


class KerasConcatenate(nn.Module):
    """Keras's Concatenate on the channels (NHWC's last axis) is dim 1 in NCHW."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=1)


class CifarCNN(nn.Module):
    """The described network: one child module per Keras layer, named as the layer, in the description's
    order; `forward` feeds each layer the outputs of the layers the description says (for a chain, the
    one before). `architecture` is kept, so conversion and tables follow it. Its input is the dataset's
    square images, or `input_shape` (height, width, channels) when given."""

    def __init__(self, architecture: Architecture, dataset: DatasetConfig = DatasetConfig(),
                 input_shape: tuple[int, int, int] | None = None):
        super().__init__()
        input_shape = input_shape or (dataset.image_size, dataset.image_size, dataset.channels)
        shapes = validate(architecture, input_shape, dataset.num_classes, f"architecture {architecture.name}")
        # PyTorch flattens NCHW in (C, H, W) order, Keras NHWC in (H, W, C): the outputs of flatten and of
        # the element-wise layers after it are permuted for comparison (`flat_outputs`), and the Dense
        # they feed has its kernel's input axis permuted on transfer (`flat_inputs`). Both map to (C, H, W).
        self.architecture = architecture
        self.flat_outputs: dict[str, tuple[int, int, int]] = {}
        self.flat_inputs: dict[str, tuple[int, int, int]] = {}
        shape_of: dict[str, tuple[int, ...]] = {INPUT: input_shape}
        feature_map_of: dict[str, tuple[int, int, int] | None] = {INPUT: None}
        # After its last use, a layer's output is let go (inputs_of index -> names no longer needed).
        self.released: dict[int, list[str]] = {}
        last_use = {}
        last = architecture.layers[-1]
        for index, (spec, shape) in enumerate(zip(architecture.layers, shapes)):
            if hasattr(self, spec.name):
                raise UserError(f"layer name {spec.name!r} clashes with a PyTorch attribute; rename the layer")
            source = architecture.inputs_of(index)[0]
            previous, feature_map = shape_of[source], feature_map_of[source]
            # The last layer's softmax stays out of the network: it returns logits.
            activation = ACTIVATIONS["linear" if spec is last else getattr(spec, "activation", "linear")]()
            self.add_module(spec.name, build_module(spec, previous, activation, is_last=spec is last))
            if isinstance(spec, Flatten):
                feature_map = (previous[2], previous[0], previous[1])
            if isinstance(spec, Dense) and feature_map is not None:
                self.flat_inputs[spec.name], feature_map = feature_map, None
            elif feature_map is not None:
                self.flat_outputs[spec.name] = feature_map
            shape_of[spec.name], feature_map_of[spec.name] = shape, feature_map
            last_use.update({name: index for name in architecture.inputs_of(index)})
        for name, index in last_use.items():
            self.released.setdefault(index, []).append(name)
        init_like_keras(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.walk(images, keep=False)[self.architecture.layers[-1].name]

    def walk(self, images: torch.Tensor, keep: bool = True) -> dict[str, torch.Tensor]:
        """Every layer's output by name (with `keep`, else only the last), following the graph."""
        outputs = {INPUT: images}
        for index, (name, module) in enumerate(self.named_children()):
            outputs[name] = module(*(outputs[source] for source in self.architecture.inputs_of(index)))
            if not keep:
                for source in self.released.get(index, ()):
                    del outputs[source]
        outputs.pop(INPUT, None)
        return outputs


def build_module(spec: Layer, input_shape: tuple[int, ...], activation: nn.Module,
                 is_last: bool = False) -> nn.Module:
    """The PyTorch module of one described layer, given its (first) input's shape in Keras's layout."""
    if isinstance(spec, (Conv2D, DepthwiseConv2D)):
        return KerasConv2d(spec, input_shape[2], input_shape[:2], activation)
    if isinstance(spec, Dense):
        return KerasDense(input_shape[0], spec.units, spec.use_bias, activation)
    if isinstance(spec, BatchNormalization):
        return KerasBatchNorm(input_shape[-1], spec.momentum, spec.epsilon)
    if isinstance(spec, Activation):
        return activation
    if isinstance(spec, MaxPooling2D):
        return nn.MaxPool2d(spec.pool_size, spec.strides)  # 'valid': no padding, the remainder dropped
    if isinstance(spec, AveragePooling2D):
        return nn.AvgPool2d(spec.pool_size, spec.strides)
    if isinstance(spec, GlobalAveragePooling2D):
        return GlobalAveragePool()
    if isinstance(spec, Dropout):
        return nn.Dropout(spec.rate)  # element-wise, like Keras (not Dropout2d)
    if isinstance(spec, Flatten):
        return nn.Flatten()
    if isinstance(spec, ZeroPadding2D):
        (top, bottom), (left, right) = spec.padding
        return nn.ZeroPad2d((left, right, top, bottom))
    if isinstance(spec, ReLU):
        return nn.ReLU()
    if isinstance(spec, Softmax):
        return nn.Identity() if is_last else ACTIVATIONS["softmax"]()
    if isinstance(spec, Add):
        return KerasAdd()
    if isinstance(spec, Concatenate):
        return KerasConcatenate()
    raise TypeError(f"no PyTorch module for {type(spec).__name__}")


def init_like_keras(network: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases (PyTorch's default is kaiming-uniform with random biases);
    BatchNorm: gamma 1, beta 0, moving mean 0, moving variance 1 (the same on both sides)."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:  # depthwise: Keras's fans of (kh, kw, in, m)
            receptive = module.weight[0, 0].numel()
            fan_in, fan_out = module.in_channels * receptive, module.out_channels // module.groups * receptive
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(module.weight, -limit, limit)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def layer_outputs(network: CifarCNN, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
    """Each Keras layer's output (the last one as logits), for per-layer comparisons."""
    return OrderedDict(network.walk(images))


def layer_table(network: CifarCNN, dataset: DatasetConfig = DatasetConfig()) -> list[dict]:
    """Per Keras layer: name, Keras class, output shape (without batch, NCHW), trainable and other
    parameters (BatchNorm's moving statistics), dropout rate."""
    probe = torch.zeros(1, dataset.channels, dataset.image_size, dataset.image_size)
    was_training = network.training
    network.eval()
    with torch.no_grad():
        outputs = layer_outputs(network, probe)
    network.train(was_training)
    modules = dict(network.named_children())
    return [{
        "name": spec.name,
        "kind": type(spec).__name__,
        "output_shape": tuple(outputs[spec.name].shape[1:]),
        "params": sum(p.numel() for p in modules[spec.name].parameters()),
        "non_trainable": sum(b.numel() for b in modules[spec.name].buffers()),
        "rate": getattr(spec, "rate", None),
    } for spec in network.architecture.layers]


def to_keras_layout(activation: torch.Tensor, flattened: tuple[int, int, int] | None) -> torch.Tensor:
    """A layer output in Keras's layout: NCHW maps to NHWC, and flatten's (C, H, W) order to (H, W, C)."""
    if activation.ndim == 4:
        return activation.permute(0, 2, 3, 1)
    if flattened is not None:
        return activation.reshape(len(activation), *flattened).permute(0, 2, 3, 1).reshape(len(activation), -1)
    return activation


def keras_layout_outputs(network: CifarCNN, images_nhwc: np.ndarray) -> OrderedDict[str, np.ndarray]:
    """Per-layer outputs in inference mode, in Keras's layout and meaning, for comparison with Keras.

    Keras's last layer holds its softmax, so the last output here is the softmax of the port's logits.
    """
    images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
    was_training = network.training
    network.eval()
    with torch.no_grad():
        outputs = layer_outputs(network, images)
    network.train(was_training)
    last = network.architecture.layers[-1].name
    outputs[last] = torch.softmax(outputs[last], dim=1)
    return OrderedDict((name, to_keras_layout(out, network.flat_outputs.get(name)).numpy())
                       for name, out in outputs.items())
