"""The Trainer callbacks `fit` uses beyond Lightning's own: history, resumable state, stopping rules.

Lightning keeps each callback's `state_dict` in the checkpoint, so a run resumed from
`checkpoints/last.ckpt` gets back exactly the history and random state that checkpoint was taken with.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint

from cifar_common.errors import UserError, non_finite_loss
from cifar_common.rundir.folder import EPOCH_METRICS, write_history
from cifar_common.rundir.resume import carry_on_hint, last_good
from lightning_impl.checkpoint_io import LAST, epochs_done

class HistoryWriter(Callback):
    """Keras-style history: one row per epoch, kept in the checkpoint; `HistoryFile` writes history.csv."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.rows: list[dict[str, float]] = []
        self.resumed_after = 0  # epochs restored from a checkpoint

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.rows.append({"epoch": trainer.current_epoch + 1,
                          **{key: float(metrics[key]) for key in EPOCH_METRICS}})

    def write(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            write_history(self.run_dir, self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The rows the checkpoint was taken with: an epoch finished after it is trained again.
        self.rows = list(state_dict["rows"])
        self.resumed_after = len(self.rows)


class HistoryFile(Checkpoint):
    """Rewrites history.csv after every epoch, once `checkpoints/last.ckpt` holds that epoch, so a crash
    keeps the epochs done and the file never claims an epoch no checkpoint holds.

    A `Checkpoint` callback because Lightning calls those after every other callback, in the order they
    were given: `fit.build_trainer` lists its ModelCheckpoint first, so this one runs after the save.
    """

    def __init__(self, history: HistoryWriter):
        self.history = history

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.history.write(trainer)


class RandomState(Callback):
    """Keeps torch's generators in the checkpoint, so a resumed run draws the same dropout masks.

    Lightning seeds once at start-up and does not save generator states; without this, a resumed
    run would restart the random stream from the seed.
    """

    def state_dict(self) -> dict[str, Any]:
        state = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class StopOnNonFiniteLoss(Callback):
    """Stops at the end of an epoch whose training or validation loss is nan or inf, before it is saved.

    The check reads the epoch's metric, so no step waits on the device. Listed before the history
    and checkpoint callbacks (Lightning runs ModelCheckpoint last), so the bad epoch is neither
    recorded nor saved and `checkpoints/last.ckpt` stays the last good one.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # loss: the epoch's steps; val_loss: the weights the checkpoint would hold.
        for name in ("loss", "val_loss"):
            value = float(trainer.callback_metrics[name])
            if math.isfinite(value):
                continue
            raise non_finite_loss(name, value, trainer.current_epoch + 1, LAST.as_posix())


class ResumeHint(Callback):
    """On Ctrl-C, SIGTERM or an error during fit, say how to carry on, naming a checkpoint that loads."""

    def __init__(self, run_dir: Path, command: str = "python -m lightning_impl.fit"):
        self.run_dir = run_dir
        self.command = command

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or isinstance(exception, UserError):
            return  # a UserError says what to do itself (fit adds the hint to a failed write)
        good = last_good(self.run_dir / LAST, epochs_done)
        if good is not None:
            print(f"\nstopped; {carry_on_hint(self.command, self.run_dir, good)}", file=sys.stderr)


class CtrlC(Callback):
    """Ctrl-C always stops the run. Python can lose a KeyboardInterrupt: when the signal is noticed
    inside a finalizer (garbage collection), the exception is printed as "Exception ignored" and the
    run carries on. The signal is remembered, and the next batch boundary raises it again, where
    Lightning handles it (graceful shutdown, the resume hint, exit status 1)."""

    def __init__(self):
        self.pending = False
        self.previous: Any = None

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._interrupt)

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.pending = True
        raise KeyboardInterrupt

    def _raise_if_lost(self, *_: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt

    on_train_batch_end = on_validation_batch_end = on_train_epoch_end = on_validation_epoch_end = _raise_if_lost

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
