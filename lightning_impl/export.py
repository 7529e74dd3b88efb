"""Write a Keras model out as PyTorch Lightning source code the user keeps, with its weights.

    python -m lightning_impl.export MODEL.keras --out DIR [--name ClassName] [--force]
    (installed as `keras2lightning`)

Reads the model's `config.json` (a Sequential or a functional model of the family in
docs/architectures.md; anything else exits 2 naming the layer), builds the port from it, loads the
file's weights (h5py, no TensorFlow) and writes:
- `DIR/<module>.py`: one file importing only torch, Lightning and the standard library: the network
  (one attribute per Keras layer, a `forward` that follows the graph with named intermediates), the
  Keras-exact classes it needs copied in by their source, and a LightningModule with the optimizer and
  loss the file was compiled with;
- `DIR/<module>.safetensors`: the network's `state_dict`.
`<module>` is the class name in snake_case. Existing files are replaced only with --force; each file
is written to a temporary file and renamed, so a failure leaves no half-written file.
"""
from __future__ import annotations

import argparse
import inspect
import json
import keyword
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch

from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.rundir.atomic import write_atomically
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.keras_config import read_keras_config
from cifar_common.spec.layers import (INPUT, MERGES, Activation, Add, Architecture, AveragePooling2D,
                                      BatchNormalization, Concatenate, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                                      GlobalAveragePooling2D, Layer, MaxPooling2D, ReLU, Softmax, ZeroPadding2D)
from cifar_common.spec.shapes import output_shapes
from lightning_impl import network as port
from lightning_impl.check_parity import port_for
from lightning_impl.emitted import RESERVED, attribute_names, folded_activation, has_attribute, leaves_out_softmax
from lightning_impl.keras_optimizers import KerasOptimizer, KerasRMSprop

ACTIVATION_CALLS = {"relu": "F.relu({})", "elu": "F.elu({})", "tanh": "torch.tanh({})", "sigmoid": "torch.sigmoid({})",
                    "softmax": "torch.softmax({}, dim=1)", "linear": "{}"}
ACTIVATION_MODULES = {"relu": "nn.ReLU()", "elu": "nn.ELU()", "tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()",
                      "softmax": "nn.Softmax(dim=1)", "linear": "nn.Identity()"}


# --- names ---------------------------------------------------------------------------------------------

def camel_case(name: str) -> str:
    """`resnet_small-v2` -> `ResnetSmallV2`: the default class name from the Keras model's name."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", name) if word]
    text = "".join(word[0].upper() + word[1:] for word in words) or "KerasModel"
    return text if text[0].isalpha() else f"Model{text}"


def snake_case(class_name: str) -> str:
    """`ResnetSmallV2` -> `resnet_small_v2`: the module and weights file names."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


# --- the network's code ----------------------------------------------------------------------------------

def _pair(value: tuple[int, int]) -> str:
    return str(value[0]) if value[0] == value[1] else str(tuple(value))


def _kwargs(**options: Any) -> str:
    return "".join(f", {key}={value}" for key, value in options.items() if value is not None)


def module_code(spec: Layer, in_shape: tuple[int, ...]) -> str | None:
    """The constructor of a layer's attribute, or None for the layers written inline (Add, Concatenate)."""
    if isinstance(spec, (Conv2D, DepthwiseConv2D)):
        pads = port.conv_paddings(spec, in_shape[:2])
        symmetric = all(before == after for before, after in pads)
        channels = in_shape[2]
        depthwise = isinstance(spec, DepthwiseConv2D)
        out = channels * spec.depth_multiplier if depthwise else spec.filters
        padding = _pair(tuple(before for before, _ in pads)) if symmetric and any(b for b, _ in pads) else None
        return (f"nn.Conv2d({channels}, {out}, kernel_size={_pair(spec.kernel_size)}"
                + _kwargs(stride=_pair(spec.strides) if spec.strides != (1, 1) else None, padding=padding,
                          groups=channels if depthwise else None, bias=None if spec.use_bias else False) + ")")
    if isinstance(spec, Dense):
        return f"nn.Linear({in_shape[0]}, {spec.units}" + _kwargs(bias=None if spec.use_bias else False) + ")"
    if isinstance(spec, BatchNormalization):
        return f"KerasBatchNorm({in_shape[-1]}, momentum={spec.momentum}, epsilon={spec.epsilon})"
    if isinstance(spec, (MaxPooling2D, AveragePooling2D)):
        cls = "nn.MaxPool2d" if isinstance(spec, MaxPooling2D) else "nn.AvgPool2d"
        stride = None if spec.strides == spec.pool_size else _pair(spec.strides)
        return f"{cls}({_pair(spec.pool_size)}" + _kwargs(stride=stride) + ")"
    if isinstance(spec, GlobalAveragePooling2D):
        return "nn.AdaptiveAvgPool2d(1)"
    if isinstance(spec, Dropout):
        return f"nn.Dropout({spec.rate})"
    if isinstance(spec, Flatten):
        return "nn.Flatten()"
    if isinstance(spec, ZeroPadding2D):
        (top, bottom), (left, right) = spec.padding
        return f"nn.ZeroPad2d({(left, right, top, bottom)})"
    if isinstance(spec, ReLU):
        return "nn.ReLU()"
    if isinstance(spec, Softmax):
        return ACTIVATION_MODULES["softmax"]
    if isinstance(spec, Activation):
        return ACTIVATION_MODULES[spec.activation]
    return None


def call_code(spec: Layer, attribute: str, args: list[str], in_shape: tuple[int, ...], is_last: bool) -> str:
    """The expression of one layer's output in `forward`."""
    if is_last and leaves_out_softmax(spec):
        return args[0]
    if isinstance(spec, Add):
        return " + ".join(args)
    if isinstance(spec, Concatenate):
        return f"torch.cat([{', '.join(args)}], dim=1)"
    value = args[0]
    if isinstance(spec, (Conv2D, DepthwiseConv2D)):
        pads = port.conv_paddings(spec, in_shape[:2])
        if any(before != after for before, after in pads):  # TensorFlow's 'same': the odd pixel bottom/right
            value = f"F.pad({value}, {(*pads[1], *pads[0])})"
    value = f"self.{attribute}({value})"
    if isinstance(spec, GlobalAveragePooling2D):
        value = f"torch.flatten({value}, 1)"
    return ACTIVATION_CALLS[folded_activation(spec, is_last)].format(value)


def reading_order(architecture: Architecture) -> list[int]:
    """The layers in an order a person would write them: each branch followed to its end before the next
    (Keras's file lists them by depth, interleaving branches). Next is always a layer whose inputs are all
    computed, the one taking the most recent output first, else the first in the file."""
    order: list[int] = []
    done = {INPUT}
    while len(order) < len(architecture.layers):
        ready = [i for i in range(len(architecture.layers))
                 if i not in order and all(name in done for name in architecture.inputs_of(i))]
        recent = architecture.layers[order[-1]].name if order else INPUT
        index = next((i for i in ready if recent in architecture.inputs_of(i)), ready[0])
        order.append(index)
        done.add(architecture.layers[index].name)
    return order


def value_names(architecture: Architecture, attributes: dict[str, str], order: list[int]) -> dict[str, str]:
    """The variable holding each output in `forward`: `x` when only the next layer takes it (a chain reads
    as one), else the layer's own name, so branches and shortcuts are named."""
    consumers: dict[str, list[int]] = {}
    for index in order:
        for name in architecture.inputs_of(index):
            consumers.setdefault(name, []).append(index)
    names = {INPUT: "x" if consumers.get(INPUT) == order[:1] else "inputs"}
    for position, index in enumerate(order):
        name = architecture.layers[index].name
        names[name] = "x" if consumers.get(name) == order[position + 1:position + 2] else attributes[name]
    return names


def network_code(architecture: Architecture, input_shape: tuple[int, int, int], class_name: str) -> str:
    """The `nn.Module` class of the network."""
    shapes = output_shapes(architecture, input_shape, class_name)
    attributes = attribute_names(architecture)
    order = reading_order(architecture)
    values = value_names(architecture, attributes, order)
    shape_of = {INPUT: input_shape} | {layer.name: shape for layer, shape in zip(architecture.layers, shapes)}
    last = len(architecture.layers) - 1
    init, forward = [], []
    for index in order:
        layer = architecture.layers[index]
        inputs = architecture.inputs_of(index)
        in_shape = shape_of[inputs[0]]
        constructor = module_code(layer, in_shape)
        if has_attribute(layer, index == last):
            init.append(f"        self.{attributes[layer.name]} = {constructor}")
        expression = call_code(layer, attributes[layer.name], [values[name] for name in inputs], in_shape,
                               index == last)
        target = "return" if index == last else f"{values[layer.name]} ="
        forward.append(f"        {target} {expression}")
    if forward[-1] == "        return x" and len(forward) > 1 and forward[-2].startswith("        x = "):
        forward[-2:] = ["        return " + forward[-2].removeprefix("        x = ")]  # return the logits directly
    merges = any(isinstance(layer, MERGES) for layer in architecture.layers)
    note = " (Add and Concatenate are\n    written in `forward`)" if merges else ""
    height, width, channels = input_shape
    return f'''class {class_name}(nn.Module):
    """The Keras model {architecture.name!r} ({architecture.fingerprint}) for {channels} x {height} x {width} inputs.

    One attribute per Keras layer, named as the layer{note}.
    """

    def __init__(self) -> None:
        super().__init__()
{chr(10).join(init)}
        init_like_keras(self)

    def forward(self, {values[INPUT]}: torch.Tensor) -> torch.Tensor:
        """NCHW images to logits: the Keras model's last softmax is left out (F.cross_entropy takes logits;
        torch.softmax(logits, dim=1) gives the Keras model's probabilities)."""
{chr(10).join(forward)}
'''


# --- training: the optimizer and loss the file was compiled with ----------------------------------------

@dataclass(frozen=True)
class Training:
    """What the emitted LightningModule trains with: classes copied in by source, and its code lines."""
    classes: tuple[type, ...]
    optimizer: str  # the expression configure_optimizers returns
    loss: str  # the expression of the loss, from `logits` and `labels`
    description: str


def training_code(compile_config: dict[str, Any] | None, source: str) -> Training:
    """The Keras-exact optimizer (and loss) of the file's `compile_config`; Keras's RMSprop defaults and
    categorical cross-entropy (the tutorial's) when the model was saved without compiling."""
    compiled = bool(compile_config)
    optimizer = (compile_config or {}).get("optimizer") or {"class_name": "RMSprop", "config": {}}
    if isinstance(optimizer, str):
        optimizer = {"class_name": {"rmsprop": "RMSprop"}.get(optimizer.lower(), optimizer), "config": {}}
    config = optimizer.get("config", {})
    if optimizer.get("class_name") != "RMSprop":
        raise UserError(f"{source}: optimizer {optimizer.get('class_name')}: export writes RMSprop models only")
    off = {"momentum": 0.0, "centered": False, "weight_decay": None, "clipnorm": None, "global_clipnorm": None,
           "clipvalue": None, "use_ema": False, "gradient_accumulation_steps": None, "loss_scale_factor": None}
    changed = [key for key, value in off.items() if config.get(key, value) != value]
    if changed:
        raise UserError(f"{source}: RMSprop option {changed[0]}={config[changed[0]]!r} is not supported")
    loss = (compile_config or {}).get("loss", "categorical_crossentropy")
    if loss not in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        raise UserError(f"{source}: loss {loss!r}: export writes categorical cross-entropy models only")
    lr, rho, epsilon = (str(np.float32(config.get(key, default))) for key, default in
                        (("learning_rate", 0.001), ("rho", 0.9), ("epsilon", 1e-7)))
    return Training((KerasOptimizer, KerasRMSprop), f"KerasRMSprop(self.parameters(), lr={lr}, rho={rho}, epsilon={epsilon})",
                    "F.cross_entropy(logits, labels)",
                    f"RMSprop(learning_rate={lr}, rho={rho},\n    epsilon={epsilon}) and categorical cross-entropy"
                    + ("" if compiled else " (the file was saved\n    without compile(): Keras's defaults)"))


def lightning_code(class_name: str, training: Training) -> str:
    return f'''class {class_name}Module(L.LightningModule):
    """{class_name} trained with {training.description}.

    The loss is computed from the logits, as Keras on TensorFlow computes it after a softmax. Labels:
    class indices, or one-hot rows as Keras takes them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.network = {class_name}()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = {training.loss}
        self.log("loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val_loss", {training.loss}, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return {training.optimizer}
'''


# --- the whole file ------------------------------------------------------------------------------------

def source_of(obj: Any) -> str:
    """A class's or function's source, as the project holds it: one implementation, copied in."""
    return inspect.getsource(obj).rstrip() + "\n"


def module_text(architecture: Architecture, input_shape: tuple[int, int, int], class_name: str,
                training: Training, model_path: Path, keras_version: str) -> str:
    """The emitted file: header, imports, the copied classes, the network and the LightningModule."""
    module = snake_case(class_name)
    copied = ([port.KerasBatchNorm] if any(isinstance(layer, BatchNormalization) for layer in architecture.layers)
              else []) + [port.init_like_keras]
    parts = [source_of(obj) for obj in copied] + [network_code(architecture, input_shape, class_name)]
    parts += [source_of(cls) for cls in training.classes] + [lightning_code(class_name, training)]
    body = "\n\n".join(parts)
    imports = ["import math"] if "math." in body else []
    # The copied optimizer classes annotate with these names; the annotations are never evaluated.
    imports = ["from __future__ import annotations", "", *imports]
    imports += ["from collections.abc import Iterable"] if re.search(r"\bIterable\b", body) else []
    typing_names = [name for name in ("Any", "ClassVar") if re.search(rf"\b{name}\b", body)]
    imports += [f"from typing import {', '.join(typing_names)}", ""] if typing_names else [""]
    imports += ["import lightning as L", "import torch", "import torch.nn.functional as F", "from torch import nn"]
    torch_version = torch.__version__.split("+")[0]
    header = f'''"""{class_name}: the Keras model {model_path.name} as PyTorch Lightning code.

Written by keras2lightning from {model_path.name} (architecture {architecture.name!r}, fingerprint
{architecture.fingerprint}) with Keras {keras_version}, torch {torch_version} and Lightning {lightning.__version__}.
It imports only torch, Lightning and the standard library. The weights (and BatchNorm statistics)
are in {module}.safetensors, in the network's state_dict names:

    from safetensors.torch import load_file
    network = {class_name}()
    network.load_state_dict(load_file("{module}.safetensors"))
"""

'''
    return formatted(header + "\n".join(imports) + "\n\n\n" + body)


def formatted(text: str) -> str:
    """The code as `ruff format` (line length 120, no configuration file consulted) writes it, so the copied
    classes and the written lines read as one file, the same bytes every time."""
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "120",
                             "--stdin-filename", "module.py", "-"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"ruff could not format the written module ({result.stderr.strip()[:300]}); "
                        f"is ruff installed (pip install ruff)?")
    return result.stdout


def keras_version_of(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("metadata.json")).get("keras_version", "unknown")
    except (KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError):
        return "unknown"


def export(model_path: Path, out_dir: Path, class_name: str | None = None, force: bool = False) -> list[Path]:
    """Write `<module>.py` and `<module>.safetensors` into `out_dir`; returns their paths."""
    network = port_for(model_path)  # refuses what is outside the family, loads the file's weights
    architecture = network.architecture
    class_name = class_name or camel_case(architecture.name)
    if not class_name.isidentifier() or keyword.iskeyword(class_name) or class_name in RESERVED:
        raise UserError(f"--name {class_name!r} is not a usable Python class name")
    module = snake_case(class_name)
    code_path, weights_path = out_dir / f"{module}.py", out_dir / f"{module}.safetensors"
    existing = [path for path in (code_path, weights_path) if path.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} exists; pass --force to replace it")
    training = training_code(read_keras_config(model_path).get("compile_config"), str(model_path))
    dataset = DatasetConfig()
    input_shape = (dataset.image_size, dataset.image_size, dataset.channels)
    text = module_text(architecture, input_shape, class_name, training, model_path, keras_version_of(model_path))
    attributes = attribute_names(architecture)
    tensors = {}
    for key, value in network.state_dict().items():
        layer, rest = key.split(".", 1)
        tensors[f"{attributes[layer]}.{rest}"] = value.detach().contiguous()
    out_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file  # noqa: PLC0415

    # One key: safetensors writes several in no fixed order, and the same model must give the same bytes.
    metadata = {"keras2lightning": json.dumps({"class": class_name, "source": model_path.name,
                                               "fingerprint": architecture.fingerprint}, sort_keys=True)}
    write_atomically(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    write_atomically(code_path, lambda tmp: tmp.write_text(text))
    return [code_path, weights_path]


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keras2lightning", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a Keras 3 model saved as .keras (Sequential or functional)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write <module>.py and .safetensors to")
    parser.add_argument("--name", default=None,
                        help="the network's class name (default: the Keras model's name in CamelCase); the files "
                             "are named after it in snake_case")
    parser.add_argument("--force", action="store_true", help="replace existing files of the same name")
    args = parser.parse_args(argv)
    for path in export(args.model, args.out, args.name, args.force):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
