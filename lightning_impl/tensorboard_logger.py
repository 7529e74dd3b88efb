"""The port's TensorBoard logger: Lightning's own, writing RUN_DIR/tensorboard/ as the Keras side does."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping

import tensorboardX
from tensorboardX.summary import hparams as hparams_summaries
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from cifar_common.tensorboard_logs import LOG_DIR, TAGS, hyperparameters

# tensorboardX's flush() writes out only what its writer thread has taken from the queue; the thread itself
# flushes this often (default 120 s), so a process killed outright loses at most this much of its logs.
FLUSH_SECONDS = 1


class EpochTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger (hparams.yaml included) with three changes, so that a port run overlays
    a Keras run: the step is the epoch counted from 1, the hyperparameters are the run's settings under
    the Keras side's names, and the writer is always tensorboardX.

    Lightning picks torch.utils.tensorboard whenever the `tensorboard` package is installed, and that
    imports TensorFlow through tensorboard's compat layer: TensorFlow would then share the port's process
    with torch's compiler stack (the import-order crash in DESIGN.md). tensorboardX writes the same files.
    """

    def __init__(self, run_dir: str | Path, settings: dict[str, Any], framework: str):
        # RUN_DIR/tensorboard/; no version folder, and so no version number in the progress bar either.
        super().__init__(save_dir=run_dir, name=LOG_DIR, version="", default_hp_metric=False,
                         flush_secs=FLUSH_SECONDS)
        self.settings = settings  # nested as in config.yaml, for hparams.yaml
        self.framework = framework

    @property
    @rank_zero_experiment
    def experiment(self) -> tensorboardX.SummaryWriter:
        if self._experiment is None:
            self._experiment = tensorboardX.SummaryWriter(logdir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, metrics: Any = None,
                        step: int | None = None) -> None:
        # Lightning passes the module's constructor arguments; the run's settings hold each of them and are
        # what the Keras side records. A resumed run records them again, unchanged.
        self.hparams = dict(self.settings)
        experiment, session_start, _ = hparams_summaries(hyperparameters(self.settings, self.framework),
                                                          {tag: None for tag in TAGS})
        # Not the third summary, which would mark the run finished before it starts (Keras writes none).
        writer = self.experiment._get_file_writer()  # as Lightning's own log_hyperparams writes them
        writer.add_summary(experiment)
        writer.add_summary(session_start)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        # Lightning's step counts optimizer steps and it adds the 0-based "epoch" to every epoch-end log.
        metrics = dict(metrics)
        epoch = int(metrics.pop("epoch"))
        super().log_metrics(metrics, step=epoch + 1)
