"""The Keras run's per-epoch checkpoint, `checkpoints/last.keras`, and carrying on from it (`--resume`).

One file holds everything a resume needs: the model with its optimizer state (Keras's own `.keras`
format), plus a `run_state.json` member with the epochs finished, the history rows and the dropout
layers' SeedGenerator states (variables Keras does not save with the weights). It is written like
every run file (`write_atomically`: same folder, flushed, loaded back before it replaces the
last one, which is kept as `last.previous.keras`).

Why not `keras.callbacks.BackupAndRestore` (Keras 3.15): it writes `latest.weights.h5` in place and
the epoch to a separate `training_metadata.json`, so a kill between the two or a full disk part-way
leaves weights and epoch out of step or a truncated file; it keeps neither the history nor the
SeedGenerator states, and deletes its files when fit ends.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from cifar_common.errors import UserError
from cifar_common.rundir.atomic import write_atomically
from cifar_common.rundir.resume import Checkpoint, checkpoint_to_resume, previous_version

if TYPE_CHECKING:
    from keras_reference.callbacks import HistoryWriter  # which imports LAST from here

LAST = Path("checkpoints") / "last.keras"
STATE_MEMBER = "run_state.json"
SEED_STATE = "seed_generator_state"  # the variable name of a SeedGenerator's state


def seed_states(model: keras.Model) -> dict[str, list]:
    """{layer name: [state, ...]} for every layer that draws random numbers (the dropout layers)."""
    return {layer.name: [np.asarray(v).tolist() for v in layer.variables if v.path.endswith(SEED_STATE)]
            for layer in model.layers if any(v.path.endswith(SEED_STATE) for v in layer.variables)}


def restore_seed_states(model: keras.Model, states: dict[str, list]) -> None:
    for layer in model.layers:
        variables = [v for v in layer.variables if v.path.endswith(SEED_STATE)]
        for variable, value in zip(variables, states.get(layer.name, [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))


def read_checkpoint(path: Path) -> tuple[keras.Model, dict[str, Any]]:
    """The compiled model with its optimizer state, and the run state saved with it."""
    model = keras.models.load_model(path)
    with zipfile.ZipFile(path) as archive:
        state = json.loads(archive.read(STATE_MEMBER))
    return model, state


def save_checkpoint(model: keras.Model, path: Path, epochs_done: int, history_rows: list[dict[str, float]]) -> None:
    state = {"epochs_done": epochs_done, "history": history_rows, "seed_states": seed_states(model)}

    def write(tmp: Path) -> None:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:  # Keras reads only its own members back
            archive.writestr(STATE_MEMBER, json.dumps(state))

    write_atomically(path, write, verify=read_checkpoint, previous=previous_version(path))


def layout(model: keras.Model) -> list[tuple[str, str, tuple]]:
    """Each layer's name, kind and weight shapes: what must agree for a checkpoint to fit a network."""
    return [(layer.name, type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights))
            for layer in model.layers]


def checkpoint_loader(expected: keras.Model):
    """`cifar_common.rundir.resume`'s loader: epochs finished and (model, state), refusing another network."""
    wanted = layout(expected)

    def load(path: Path) -> tuple[int, tuple[keras.Model, dict[str, Any]]]:
        model, state = read_checkpoint(path)
        saved = layout(model)
        if saved != wanted:
            differ = next((f"{a} where config.yaml has {b}" for a, b in zip(saved, wanted) if a != b),
                          f"{len(saved)} layers where config.yaml has {len(wanted)}")
            raise UserError(f"{path} is from another network or variant than config.yaml describes "
                            f"({differ}); start a new run for it")
        return int(state["epochs_done"]), (model, state)

    return load


def epochs_done(path: Path) -> tuple[int, None]:
    """The plain loader: any checkpoint of the Keras side that loads (for saying where a run can carry on)."""
    return int(read_checkpoint(path)[1]["epochs_done"]), None


def resume_checkpoint(run_dir: Path, expected: keras.Model) -> Checkpoint:
    return checkpoint_to_resume(run_dir, run_dir / LAST, checkpoint_loader(expected))


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes `checkpoints/last.keras` after every epoch, with the history rows recorded so far, and only
    then history.csv: the history file never claims an epoch that no checkpoint holds."""

    def __init__(self, run_dir: Path, history: HistoryWriter):
        super().__init__()
        self.path = run_dir / LAST
        self.history = history  # listed before this callback, so it holds this epoch's row

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_checkpoint(self.model, self.path, epoch + 1, list(self.history.rows))
        self.history.write()
