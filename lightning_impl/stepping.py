"""The port's training steps recorded as Keras records them, and Keras's own steps run in a subprocess.

A record per step: the loss, every gradient, every variable after the update (BatchNorm's moving
statistics included) and every optimizer slot, keyed and laid out as Keras keys and lays them out
("conv1/kernel", "conv1/kernel/velocity"), so `cifar_common.training_parity` compares them directly.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cifar_common.errors import UserError
from lightning_impl.convert import to_keras_arrays, to_keras_layout, variables_of
from lightning_impl.keras_compile import TrainingSetup
from lightning_impl.network import CifarCNN


@dataclass(frozen=True)
class StepCase:
    """One run of `steps` steps of a saved model with an optimizer and loss (Keras configs), in `dtype`."""
    model: Path
    inputs: Path  # npz: x (N, H, W, C), y (N,) integer labels
    optimizer: Any
    loss: Any
    dtype: str = "float64"
    steps: int = 5
    batch_size: int = 32

    def request(self) -> dict[str, Any]:
        return {"model": str(self.model), "inputs": str(self.inputs), "optimizer": self.optimizer,
                "loss": self.loss, "dtype": self.dtype, "steps": self.steps, "batch_size": self.batch_size}


def prepare_for_steps(network: CifarCNN, dtype: str) -> CifarCNN:
    """The network in `dtype`, in training mode (BatchNorm on batch statistics), its Dropout off."""
    network = network.to(getattr(torch, dtype)).train()
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return network


def slot_arrays(network: CifarCNN, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The optimizer's slots in Keras's keys and layouts: "<layer>/<variable>/<slot>"."""
    arrays = {}
    for name, module in network.named_children():
        for variable, tensor, trainable in variables_of(module):
            for slot, value in (optimizer.state[tensor].items() if trainable and tensor in optimizer.state else ()):
                if torch.is_tensor(value) and value.shape == tensor.shape:
                    value = value.detach().cpu().numpy().copy()
                    arrays[f"{name}/{variable}/{slot}"] = to_keras_layout(name, variable, value, network)
    return arrays


def port_steps(network: CifarCNN, setup: TrainingSetup, images: np.ndarray, labels: np.ndarray,
               batch_size: int, steps: int, dtype: str) -> list[dict[str, Any]]:
    """`steps` steps on consecutive batches; `network` must hold the starting weights."""
    network = prepare_for_steps(network, dtype)
    optimizer = setup.optimizer(network.parameters())
    records = []
    for index in range(steps):
        batch = slice(index * batch_size, (index + 1) * batch_size)
        x = torch.from_numpy(np.ascontiguousarray(images[batch].astype(dtype))).permute(0, 3, 1, 2).contiguous()
        optimizer.zero_grad()
        loss = setup.loss(network(x), torch.from_numpy(labels[batch].astype(np.int64)))
        loss.backward()
        gradients = to_keras_arrays(network, gradients=True)
        optimizer.step()
        records.append({"loss": loss.item(), "gradients": gradients, "variables": to_keras_arrays(network),
                        "slots": slot_arrays(network, optimizer)})
    return records


def unflatten(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The inverse of keras_reference.stepping.flat."""
    records: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        index, kind, *name = key.split("/")
        record = records.setdefault(int(index), {"gradients": {}, "variables": {}, "slots": {}})
        if kind == "loss":
            record["loss"] = float(value)
        else:
            record[kind]["/".join(name)] = value
    return [records[i] for i in sorted(records)]


def keras_steps(cases: list[StepCase]) -> list[list[dict[str, Any]]]:
    """Keras's records of every case, from one subprocess (TensorFlow starts once, away from torch)."""
    with tempfile.TemporaryDirectory() as tmp:
        request_dir = Path(tmp)
        (request_dir / "request.json").write_text(json.dumps([case.request() for case in cases]))
        result = subprocess.run([sys.executable, "-m", "keras_reference.stepping", str(request_dir)],
                                check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"Keras could not take the training steps:\n{result.stderr[-2000:]}")
        records = []
        for index in range(len(cases)):
            with np.load(request_dir / f"{index}.npz") as npz:
                records.append(unflatten({key: npz[key] for key in npz.files}))
        return records
