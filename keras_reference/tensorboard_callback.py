"""The reference's TensorBoard logs: RUN_DIR/tensorboard/ with the port's tags, steps and hyperparameters."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from cifar_common.rundir.tensorboard_logs import TAGS, hyperparameters, log_dir


class EpochTensorBoard(keras.callbacks.Callback):
    """Each epoch's history row as scalars named as in history.csv, the step being the epoch counted from 1,
    and the run's settings as hyperparameters, written with tf.summary.

    Keras's own `TensorBoard` callback would name them `epoch_loss` (in train/ and validation/ runs) at
    steps counted from 0, which does not overlay the port's logs, and has no hyperparameters.
    """

    def __init__(self, run_dir: str | Path, settings: dict[str, Any], framework: str):
        super().__init__()
        self.folder = log_dir(run_dir)
        self.hyperparameters = hyperparameters(settings, framework)
        self.writer: tf.summary.SummaryWriter | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.writer = tf.summary.create_file_writer(str(self.folder))
        with self.writer.as_default():
            hp.hparams_config(hparams=[hp.HParam(name) for name in self.hyperparameters],
                              metrics=[hp.Metric(tag) for tag in TAGS])
            hp.hparams(self.hyperparameters)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with self.writer.as_default(step=epoch + 1):
            for tag, value in (logs or {}).items():
                tf.summary.scalar(tag, float(value))
        self.writer.flush()  # each epoch is visible while training goes on

    def on_train_end(self, logs: dict | None = None) -> None:
        self.writer.close()
