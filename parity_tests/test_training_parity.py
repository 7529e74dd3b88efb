"""Training steps with a model's own optimizer and loss: every Keras optimizer option the port supports,
against Keras itself, on a tiny family model with non-square 1-channel inputs and 5 classes (BatchNorm
after a conv and after a dense, Dropout switched off). One Keras process takes the whole matrix."""
import os

import keras
import numpy as np
import pytest
import torch

from cifar_common import training_parity as tp
from cifar_common.errors import UserError
from lightning_impl.keras_compile import training_setup
from lightning_impl.keras_losses import KerasCrossEntropy
from lightning_impl.stepping import StepCase, keras_steps
from parity_tests.training_matrix import (
    BATCH,
    CCE,
    LOSS_MATRIX,
    NEGATIVE_CONTROLS,
    OPTIMIZER_MATRIX,
    TorchSetup,
    cases,
    compare_with_port,
    save_tiny_model,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model of the family saved with a compile config, and seeded random inputs for it."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def keras_records(tiny):
    """Keras's records of the whole matrix, from one subprocess."""
    matrix = cases(*tiny)
    return dict(zip(matrix, keras_steps(list(matrix.values())))), matrix


def compare_case(keras_records, name: str, dtype: str, setup=None) -> list[tp.StepRow]:
    records, matrix = keras_records
    return compare_with_port(records[name, dtype], matrix[name, dtype], setup,
                             keras_float64_first=records.get((name, "float64-first"), [None])[0])


@pytest.mark.parametrize("name", list(OPTIMIZER_MATRIX))
def test_optimizer_steps_match_keras(name, keras_records):
    """5 float64 steps: every loss, gradient, variable, moving statistic and slot within 1e-10; the float32
    first step: every variable within 1e-6 + 1e-3 x its update (elements whose float32 gradient is
    rounding noise are judged in float64 only)."""
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


@pytest.mark.report
def test_record_the_optimizer_matrix_on_the_configs_models(cifar, report_dir, tmp_path):
    """Opt-in (-m report): the whole optimizer matrix on the four configs' models (32x32x3, 10 classes;
    BatchNorm statistics drawn at random, Dropout off), 5 float64 steps on seeded random images and the
    float32 first step on real test images, into reports/training-parity.md."""
    import datetime

    from cifar_common.rundir.atomic import write_text
    from cifar_common.rundir.metrics_json import cpu_model
    from parity_tests.harness import ARCHITECTURES, keras_and_port

    matrix, inputs = {}, {}
    rng = np.random.default_rng(0)
    inputs["float64"] = tmp_path / "float64.npz"
    np.savez(inputs["float64"], x=rng.random((5 * BATCH, 32, 32, 3)), y=rng.integers(0, 10, 5 * BATCH))
    inputs["float32"] = tmp_path / "float32.npz"
    np.savez(inputs["float32"], x=cifar.x_test[:BATCH].astype("float32") / 255, y=cifar.y_test[:BATCH].astype(np.int64))
    for config_name in ARCHITECTURES:
        model, _ = keras_and_port(config_name, dropout=False)
        model.save(tmp_path / f"{config_name}.keras")
        for name, optimizer in OPTIMIZER_MATRIX.items():
            for kind, dtype, steps, images in (("float64", "float64", 5, "float64"), ("float32", "float32", 1, "float32"),
                                               ("float64-first", "float64", 1, "float32")):
                matrix[config_name, name, kind] = StepCase(tmp_path / f"{config_name}.keras", inputs[images], optimizer,
                                                           CCE, dtype, steps, BATCH)
    records = dict(zip(matrix, keras_steps(list(matrix.values()))))
    lines = ["# Training parity: every optimizer option on the configs' models", "",
             (f"Measured {datetime.date.today()} on {cpu_model()} "
              f"({os.cpu_count()} cores), CPU, by `pytest parity_tests/test_training_parity.py -m report` "
              f"(one Keras process for the matrix). Batch {BATCH}; Dropout off; BatchNorm statistics drawn at random."),
             "", ("float64: largest difference over 5 steps (every loss, gradient, variable, moving statistic, slot; "
                  f"bound {tp.FLOAT64_ATOL:g}). float32: first step, largest variable difference over its bound "
                  "(1e-6 + 1e-3 x Keras's update; elements whose gradient is rounding noise or goes through a max-pooling tie are judged in float64 only)."), "",
             "| model | optimizer | float64 largest difference | where | float32 difference / bound | where | ok |",
             "|---|---|---:|---|---:|---|---|"]
    failures = []
    for (config_name, name, kind), case in matrix.items():
        if kind != "float64":
            continue
        rows64 = compare_with_port(records[config_name, name, "float64"], case, classes=10)
        case32 = matrix[config_name, name, "float32"]
        rows32 = compare_with_port(records[config_name, name, "float32"], case32, classes=10,
                                   keras_float64_first=records[config_name, name, "float64-first"][0])
        worst64 = max((w for row in rows64 for w in (row.loss, row.gradient, row.variable, row.slot) if w),
                      key=lambda w: w.difference)
        first = rows32[0].variable
        ok = tp.all_ok(rows64) and tp.all_ok(rows32)
        failures += [] if ok else [f"{config_name} {name}"]
        lines.append(f"| {config_name} | {name} | {worst64.difference:.1e} | {worst64.name} | "
                     f"{first.difference / first.tolerance:.3f} | {first.name} | {'ok' if ok else 'FAIL'} |")
    write_text(report_dir / "training-parity.md", "\n".join(lines) + "\n")
    assert not failures, failures
