"""The TensorBoard logs both fit commands write, so that `tensorboard --logdir runs/` overlays a Keras
run and a port run.

Each run folder gets `tensorboard/`: one scalar per history.csv column (loss, accuracy, val_loss,
val_accuracy), the step being the epoch counted from 1 as in history.csv, and the run's settings as
hyperparameters, under the same names on both sides. history.csv stays what the project's tools read.
The writers live beside each framework (`lightning_impl.tensorboard_logger`,
`keras_reference.tensorboard_callback`); this module holds what they share and imports neither.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_common.rundir.folder import EPOCH_METRICS
from cifar_common.spec.yaml_form import parse_architecture

LOG_DIR = "tensorboard"  # inside the run folder: a resumed run carries on in the same one
TAGS = EPOCH_METRICS  # one scalar per history.csv column


def log_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOG_DIR


def hyperparameters(settings: dict[str, Any], framework: str) -> dict[str, bool | int | float | str]:
    """config.yaml's settings flattened to `training/epochs`-style names, plus the framework; the
    network as its name and fingerprint (a list of layers is no hyperparameter TensorBoard can filter by)."""
    flat: dict[str, bool | int | float | str] = {"framework": framework}
    for section, values in settings.items():
        if section == "architecture":
            architecture = parse_architecture(values, "config.yaml architecture")
            flat.update({"architecture/name": architecture.name, "architecture/fingerprint": architecture.fingerprint})
            continue
        for name, value in values.items():
            flat[f"{section}/{name}"] = value
    return flat
