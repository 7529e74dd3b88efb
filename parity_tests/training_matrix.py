"""The training-parity matrix: every Keras optimizer option and loss form the port reproduces, a tiny
family model to run them on, the port's side of each case and torch's own optimizers as negative
controls. Used by test_training_parity.py and measure_margins."""
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import torch

from cifar_common import training_parity as tp
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.keras_config import architecture_of_keras_file
from cifar_common.spec.yaml_form import parse_architecture
from keras_reference.model import build_model
from lightning_impl.convert import load_keras_file, to_keras_arrays
from lightning_impl.keras_compile import training_setup
from lightning_impl.keras_losses import KerasCrossEntropy
from lightning_impl.network import CifarCNN
from lightning_impl.stepping import StepCase, port_steps

INPUT_SHAPE = (10, 8, 1)
CLASSES = 5
BATCH = 16


def schedule(staircase: bool) -> dict:
    return {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5, "staircase": staircase}}


# Every optimizer and option the port reproduces (each at least once), as a .keras file stores them.
OPTIMIZER_MATRIX = {
    "RMSprop": {"class_name": "RMSprop", "config": {}},
    "RMSprop-momentum-centered": {"class_name": "RMSprop", "config": {"momentum": 0.9, "centered": True}},
    "RMSprop-weight_decay-clipnorm": {"class_name": "RMSprop", "config": {"weight_decay": 0.05, "clipnorm": 0.1}},
    "Adam": {"class_name": "Adam", "config": {}},
    "Adam-amsgrad-staircase-global_clipnorm": {"class_name": "Adam", "config": {
        "amsgrad": True, "learning_rate": schedule(True), "global_clipnorm": 0.5}},
    "Adam-epsilon-weight_decay": {"class_name": "Adam", "config": {"epsilon": 1e-3, "weight_decay": 0.1}},
    "AdamW": {"class_name": "AdamW", "config": {}},
    "AdamW-clipvalue": {"class_name": "AdamW", "config": {"weight_decay": 0.1, "clipvalue": 0.01}},
    "SGD": {"class_name": "SGD", "config": {"learning_rate": 0.1}},
    "SGD-nesterov-decay-weight_decay": {"class_name": "SGD", "config": {
        "momentum": 0.9, "nesterov": True, "learning_rate": schedule(False), "weight_decay": 0.01}},
}
LOSS_MATRIX = {
    "sparse": "sparse_categorical_crossentropy",
    "from_logits-label_smoothing": {"class_name": "CategoricalCrossentropy",
                                    "config": {"from_logits": True, "label_smoothing": 0.1}},
}
CCE = "categorical_crossentropy"


def cases(model, inputs) -> dict[tuple[str, str], StepCase]:
    matrix = {}
    for name, optimizer in OPTIMIZER_MATRIX.items():
        matrix[name, "float64"] = StepCase(model, inputs, optimizer, CCE, "float64", 5, BATCH)
        matrix[name, "float32"] = StepCase(model, inputs, optimizer, CCE, "float32", 1, BATCH)
        # The float32 step taken in float64: which of its elements float32 can judge (training_parity).
        matrix[name, "float64-first"] = StepCase(model, inputs, optimizer, CCE, "float64", 1, BATCH)
    for name, loss in LOSS_MATRIX.items():
        matrix[name, "float64"] = StepCase(model, inputs, OPTIMIZER_MATRIX["Adam"], loss, "float64", 5, BATCH)
    return matrix


def save_tiny_model(folder: Path) -> tuple[Path, Path]:
    """A tiny model of the family saved with a compile config, and seeded random inputs for it."""
    architecture = parse_architecture({"name": "tiny", "conv_blocks": [{"filters": 4, "convs": 1, "batch_norm": True},
                                                                       {"filters": 6, "convs": 1}],
                                       "dense": [{"units": 8, "batch_norm": True, "dropout": 0.5}],
                                       "classes": CLASSES}, "tiny")
    keras.utils.set_random_seed(3)
    model = build_model(architecture, DatasetConfig(num_classes=CLASSES), INPUT_SHAPE)
    model.compile(optimizer="rmsprop", loss=CCE)
    model.save(folder / "tiny.keras")
    rng = np.random.default_rng(0)
    np.savez(folder / "inputs.npz", x=rng.random((5 * BATCH, *INPUT_SHAPE)), y=rng.integers(0, CLASSES, 5 * BATCH))
    return folder / "tiny.keras", folder / "inputs.npz"


def port_network(model_path, dtype: str, classes: int = CLASSES) -> CifarCNN:
    architecture, shape = architecture_of_keras_file(model_path)
    network = CifarCNN(architecture, DatasetConfig(num_classes=classes), shape)
    load_keras_file(model_path, network)
    return network.to(getattr(torch, dtype))


def run_port(case: StepCase, setup, classes: int = CLASSES) -> tuple[list, dict]:
    network = port_network(case.model, case.dtype, classes)
    start = to_keras_arrays(network)
    with np.load(case.inputs) as npz:
        return port_steps(network, setup, npz["x"], npz["y"], case.batch_size, case.steps, case.dtype), start


def compare_with_port(keras: list, case: StepCase, setup=None, classes: int = CLASSES,
                      keras_float64_first: dict | None = None) -> list[tp.StepRow]:
    """The port's steps of a case (with the case's optimizer and loss, or `setup`), compared with Keras's;
    for a float32 case, `keras_float64_first` is Keras's record of its first step in float64."""
    setup = setup or training_setup({"optimizer": case.optimizer, "loss": case.loss})
    port, start = run_port(case, setup, classes)
    float64_first = None
    if case.dtype == "float32" and keras_float64_first is not None:
        port64 = run_port(replace(case, dtype="float64", steps=1), setup, classes)[0][0]
        float64_first = (keras_float64_first, port64)
    return tp.compare_steps(keras, port, start, case.dtype, float64_first)


@dataclass
class TorchSetup:
    """torch's own optimizer in place of the port's (negative controls)."""
    make: Callable
    loss: KerasCrossEntropy = field(default_factory=KerasCrossEntropy)

    def optimizer(self, params):
        return self.make(params)


NEGATIVE_CONTROLS = {  # Keras's optimizer in the matrix -> torch's nearest setting of its own optimizer
    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.9, eps=1e-7),  # eps outside the sqrt
    "Adam": lambda p: torch.optim.Adam(p, lr=0.001, eps=1e-7),  # eps after bias correction
    "Adam-epsilon-weight_decay": lambda p: torch.optim.Adam(p, lr=0.001, eps=1e-3, weight_decay=0.1),  # L2
    "RMSprop-weight_decay-clipnorm": lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.9, eps=1e-7,
                                                                   weight_decay=0.05),  # L2, no clipnorm
    "SGD-nesterov-decay-weight_decay": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True,
                                                                 weight_decay=0.01),  # L2, no decay
}
