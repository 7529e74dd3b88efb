"""A `.keras` file's `compile_config` (its optimizer and loss) as the port's optimizer and loss.

Everything outside what the port reproduces exactly is refused with a UserError naming it, before
anything runs: another optimizer or schedule, `use_ema`, `gradient_accumulation_steps`,
`loss_scale_factor`, another loss, a reduction other than "sum_over_batch_size", `ignore_class`,
`loss_weights`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from cifar_common.errors import UserError
from lightning_impl.keras_losses import KerasCrossEntropy
from lightning_impl.keras_optimizers import OPTIMIZERS, KerasOptimizer

# Keras's optimizer settings with no effect on the steps (EMA settings only matter with use_ema).
INERT = ("name", "ema_momentum", "ema_overwrite_frequency")
# Settings that must be off, with the value that means off.
OFF = {"use_ema": False, "gradient_accumulation_steps": None, "loss_scale_factor": None}
SCHEDULE_KEYS = {"initial_learning_rate": "lr", "decay_steps": "decay_steps", "decay_rate": "decay_rate",
                 "staircase": "staircase"}
LOSSES = {"CategoricalCrossentropy": False, "SparseCategoricalCrossentropy": True,  # -> sparse
          "categorical_crossentropy": False, "sparse_categorical_crossentropy": True}


@dataclass(frozen=True)
class TrainingSetup:
    """The optimizer (its port class and settings, Keras's names except `lr`) and the loss a file was
    compiled with."""
    optimizer_name: str
    optimizer_options: dict[str, Any]
    loss: KerasCrossEntropy
    loss_name: str

    def optimizer(self, params: Iterable) -> KerasOptimizer:
        """A fresh optimizer (iteration 0, empty slots) over `params`."""
        return OPTIMIZERS[self.optimizer_name](params, **self.optimizer_options)

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.optimizer_options.items() if v is not None)
        return f"{self.optimizer_name}({options}); loss {self.loss_name}({self.loss.extra_repr()})"


def _learning_rate(value: Any, source: str) -> dict[str, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"lr": float(value)}
    if isinstance(value, dict) and value.get("class_name") == "ExponentialDecay":
        config = value.get("config", {})
        return {port: config[keras] for keras, port in SCHEDULE_KEYS.items() if keras in config}
    name = value.get("class_name", value) if isinstance(value, dict) else value
    raise UserError(f"{source}: learning-rate schedule {name!r} is not supported (supported: a constant rate "
                    f"or ExponentialDecay)")


def optimizer_from_keras_config(optimizer: Any, source: str) -> tuple[str, dict[str, Any]]:
    """(port class name, its settings) from `compile_config.optimizer`; Keras's defaults where it says nothing."""
    if isinstance(optimizer, str):
        optimizer = {"class_name": {"rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW",
                                    "sgd": "SGD"}.get(optimizer.lower(), optimizer), "config": {}}
    if not isinstance(optimizer, dict):
        raise UserError(f"{source}: optimizer {optimizer!r} is not a Keras optimizer config")
    name = optimizer.get("class_name")
    if name not in OPTIMIZERS or optimizer.get("registered_name") not in (None, name):
        raise UserError(f"{source}: optimizer {optimizer.get('registered_name') or name!r} is not supported "
                        f"(supported: {', '.join(OPTIMIZERS)})")
    config = dict(optimizer.get("config", {}))
    for key, off in OFF.items():
        value = config.pop(key, off)
        if value != off:
            raise UserError(f"{source}: optimizer option {key}={value!r} is not supported (only {key}={off!r})")
    options = _learning_rate(config.pop("learning_rate", 0.01 if name == "SGD" else 0.001), source)
    for key in INERT:
        config.pop(key, None)
    options.update(config)
    try:
        OPTIMIZERS[name]([torch.zeros(1, requires_grad=True)], **options)  # its own checks, on a probe
    except TypeError as error:
        raise UserError(f"{source}: optimizer {name} option not supported ({error})") from None
    except ValueError as error:
        raise UserError(f"{source}: optimizer {name}: {error}") from None
    return name, options


def loss_from_keras_config(loss: Any, source: str) -> tuple[str, KerasCrossEntropy]:
    if isinstance(loss, str):
        loss = {"class_name": loss, "config": {}}
    if not isinstance(loss, dict):
        raise UserError(f"{source}: loss {loss!r} is not supported (one categorical or sparse categorical "
                        f"cross-entropy; several losses are not)")
    name = loss.get("class_name")
    if name not in LOSSES:
        raise UserError(f"{source}: loss {loss.get('registered_name') or name!r} is not supported (supported: "
                        f"CategoricalCrossentropy, SparseCategoricalCrossentropy)")
    config = loss.get("config") or {}
    if config.get("reduction", "sum_over_batch_size") != "sum_over_batch_size":
        raise UserError(f"{source}: loss reduction {config['reduction']!r} is not supported "
                        f"(only 'sum_over_batch_size', the mean over the batch)")
    if config.get("ignore_class") is not None:
        raise UserError(f"{source}: loss option ignore_class={config['ignore_class']!r} is not supported")
    if config.get("axis", -1) != -1:
        raise UserError(f"{source}: loss option axis={config['axis']!r} is not supported (only -1, the classes)")
    return name, KerasCrossEntropy(sparse=LOSSES[name], from_logits=bool(config.get("from_logits", False)),
                                   label_smoothing=float(config.get("label_smoothing", 0.0) or 0.0))


def training_setup(compile_config: dict[str, Any] | None, source: str = "model") -> TrainingSetup:
    """The port's optimizer and loss for a `compile_config`; UserError naming what is not supported."""
    if not compile_config:
        raise UserError(f"{source}: the model was saved without compiling it (no compile_config)")
    if compile_config.get("loss_weights") is not None:
        raise UserError(f"{source}: loss_weights={compile_config['loss_weights']!r} is not supported")
    name, options = optimizer_from_keras_config(compile_config.get("optimizer"), source)
    loss_name, loss = loss_from_keras_config(compile_config.get("loss"), source)
    return TrainingSetup(name, options, loss, loss_name)
