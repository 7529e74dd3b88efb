"""Training steps with a model's own optimizer and loss: every Keras optimizer option the port supports,
against Keras itself, on a tiny family model with non-square 1-channel inputs and 5 classes (BatchNorm
after a conv and after a dense, Dropout switched off). One Keras process takes the whole matrix."""
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import pytest
import torch

from cifar_common import training_parity as tp
from cifar_common.architecture import architecture_of_keras_file, parse_architecture
from cifar_common.config import DatasetConfig
from cifar_common.errors import UserError
from keras_reference.model import build_model
from lightning_impl.convert import load_keras_file, to_keras_arrays
from lightning_impl.keras_compile import training_setup
from lightning_impl.keras_losses import KerasCrossEntropy
from lightning_impl.network import CifarCNN
from lightning_impl.stepping import StepCase, keras_steps, port_steps

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
    for name, loss in LOSS_MATRIX.items():
        matrix[name, "float64"] = StepCase(model, inputs, OPTIMIZER_MATRIX["Adam"], loss, "float64", 5, BATCH)
    return matrix


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model of the family saved with a compile config, and seeded random inputs for it."""
    folder = tmp_path_factory.mktemp("tiny")
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


@pytest.fixture(scope="module")
def keras_records(tiny):
    """Keras's records of the whole matrix, from one subprocess."""
    matrix = cases(*tiny)
    return dict(zip(matrix, keras_steps(list(matrix.values())))), matrix


def port_network(model_path, dtype: str) -> CifarCNN:
    architecture, shape = architecture_of_keras_file(model_path)
    network = CifarCNN(architecture, DatasetConfig(num_classes=CLASSES), shape)
    load_keras_file(model_path, network)
    return network.to(getattr(torch, dtype))


def run_port(case: StepCase, setup) -> tuple[list, dict]:
    network = port_network(case.model, case.dtype)
    start = to_keras_arrays(network)
    with np.load(case.inputs) as npz:
        return port_steps(network, setup, npz["x"], npz["y"], case.batch_size, case.steps, case.dtype), start


def compare_case(keras_records, name: str, dtype: str, setup=None) -> list[tp.StepRow]:
    records, matrix = keras_records
    case = matrix[name, dtype]
    setup = setup or training_setup({"optimizer": case.optimizer, "loss": case.loss})
    port, start = run_port(case, setup)
    exact = None
    if dtype == "float32":  # the same first step in float64, by the port (its float64 steps match Keras's)
        exact = run_port(StepCase(case.model, case.inputs, case.optimizer, case.loss, "float64", 1, BATCH), setup)[0][0]
    return tp.compare_steps(records[name, dtype], port, start, dtype, exact)


@pytest.mark.parametrize("name", list(OPTIMIZER_MATRIX))
def test_optimizer_steps_match_keras(name, keras_records):
    """5 float64 steps: every loss, gradient, variable, moving statistic and slot within 1e-10; the float32
    first step: every variable within 1e-6 + 1e-3 x its update (or as close to float64 as Keras's own)."""
    for dtype in ("float64", "float32"):
        rows = compare_case(keras_records, name, dtype)
        assert tp.all_ok(rows), tp.format_steps(rows, f"{name}, {dtype}")
    records, _ = keras_records
    assert name == "SGD" or records[name, "float64"][-1]["slots"], "no slots compared"


@pytest.mark.parametrize("name", list(LOSS_MATRIX))
def test_loss_forms_match_keras(name, keras_records):
    """Sparse labels, from_logits and label_smoothing: 5 float64 Adam steps agree within 1e-10."""
    rows = compare_case(keras_records, name, "float64")
    assert tp.all_ok(rows), tp.format_steps(rows, name)


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


@pytest.mark.parametrize("name", list(NEGATIVE_CONTROLS))
def test_torch_optimizers_miss_keras(name, keras_records):
    """torch's own optimizers, set as close to Keras as they go, miss the float64 bound by orders of
    magnitude: the check sees epsilon placement and the weight-decay form."""
    rows = compare_case(keras_records, name, "float64", TorchSetup(NEGATIVE_CONTROLS[name]))
    worst = max(row.variable.difference for row in rows)
    assert worst > 1e4 * tp.FLOAT64_ATOL, f"{name}: torch's optimizer within {worst:.1e} of Keras's"


def test_clipped_probability_cross_entropy_matches_keras():
    """Where Keras gets probabilities without logits it normalises and clips them to [1e-7, 1 - 1e-7];
    KerasCrossEntropy(softmax_logits=False) does the same (saturated rows included), categorical and sparse."""
    logits = np.array([[30.0, 0.0, -30.0], [0.1, 0.2, 0.3], [-50.0, 50.0, 0.0]])
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    labels = np.array([2, 1, 0])
    for sparse in (False, True):
        target = labels if sparse else np.eye(3)[labels]
        keras_loss = (keras.losses.sparse_categorical_crossentropy if sparse else keras.losses.categorical_crossentropy)(
            keras.ops.convert_to_tensor(target), keras.ops.convert_to_tensor(probabilities))
        ours = KerasCrossEntropy(sparse=sparse, softmax_logits=False)(torch.from_numpy(logits), torch.from_numpy(labels))
        assert abs(float(np.mean(keras_loss)) - ours.item()) <= 1e-12, (sparse, float(np.mean(keras_loss)), ours.item())
    assert ours.item() < 12.0  # clipped: -log(1e-7) = 16.1 bounds each row, the logits path would give 60 + 100


REFUSED = {
    "Nadam": {"optimizer": {"class_name": "Nadam", "config": {}}, "loss": CCE},
    "CosineDecay": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": {
        "class_name": "CosineDecay", "config": {}}}}, "loss": CCE},
    "use_ema": {"optimizer": {"class_name": "Adam", "config": {"use_ema": True}}, "loss": CCE},
    "gradient_accumulation_steps": {"optimizer": {"class_name": "SGD", "config": {"gradient_accumulation_steps": 4}},
                                    "loss": CCE},
    "loss_scale_factor": {"optimizer": {"class_name": "SGD", "config": {"loss_scale_factor": 128.0}}, "loss": CCE},
    "Huber": {"optimizer": "adam", "loss": {"class_name": "Huber", "config": {}}},
    "'sum'": {"optimizer": "adam", "loss": {"class_name": "CategoricalCrossentropy", "config": {"reduction": "sum"}}},
    "ignore_class": {"optimizer": "adam", "loss": {"class_name": "SparseCategoricalCrossentropy",
                                                   "config": {"ignore_class": 0}}},
    "loss_weights": {"optimizer": "adam", "loss": CCE, "loss_weights": [0.5]},
}


@pytest.mark.parametrize("named", list(REFUSED))
def test_unsupported_training_settings_are_refused_by_name(named):
    """Another optimizer, schedule, loss or an option the port does not reproduce: a UserError naming it."""
    with pytest.raises(UserError, match=named):
        training_setup(REFUSED[named], "model.keras")
