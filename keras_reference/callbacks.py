"""The Keras callbacks `fit` uses besides the checkpoint: the history file and the non-finite loss stop."""
from __future__ import annotations

import math
from pathlib import Path

import keras

from cifar_common.errors import non_finite_loss
from cifar_common.rundir.folder import write_history
from keras_reference.checkpoints import LAST


class HistoryWriter(keras.callbacks.Callback):
    """One row per epoch; `EpochCheckpoint` saves them with the epoch, then writes history.csv.

    `rows`: the epochs a resumed run finished before (from its checkpoint); new epochs follow them.
    """

    def __init__(self, run_dir: Path, rows: list[dict[str, float]] | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.rows: list[dict[str, float]] = list(rows or [])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})

    def write(self) -> None:
        write_history(self.run_dir, self.rows)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Like `keras.callbacks.TerminateOnNaN`, but at the epoch's end and with the port's message and exit.

    Listed first, so the bad epoch is neither recorded nor saved and `checkpoints/last.keras` stays
    the last good one. Checks `val_loss` too: the weights the checkpoint would hold.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name in ("loss", "val_loss"):
            value = float((logs or {})[name])
            if not math.isfinite(value):
                raise non_finite_loss(name, value, epoch + 1, LAST.as_posix())
