"""The port's TensorBoard logger: Lightning's own, writing RUN_DIR/tensorboard/ as the Keras side does."""
from __future__ import annotations

import os
import time
from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams as hparams_summaries
from tensorboardX.summary import scalar

from cifar_common.rundir.tensorboard_logs import LOG_DIR, TAGS, hyperparameters


class EpochTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger (hparams.yaml included), changed so that a port run overlays a Keras run
    and keeps every finished epoch through a kill:

    - the step is the epoch counted from 1, and the hyperparameters are the run's settings under the names
      the Keras side uses;
    - events are written with tensorboardX's EventsWriter, on disk when Lightning's `save()` returns after
      each log (tensorboardX's SummaryWriter hands them to a thread that writes them out up to two minutes
      later, so kill -9 would lose the last epochs);
    - never torch.utils.tensorboard, which Lightning picks whenever `tensorboard` is installed and which
      imports TensorFlow through tensorboard's compat layer (the import-order crash in DESIGN.md).
    """

    def __init__(self, run_dir: str | Path, settings: dict[str, Any], framework: str):
        # RUN_DIR/tensorboard/: no version folder, and so no version number in the progress bar either.
        super().__init__(save_dir=run_dir, name=LOG_DIR, version="", default_hp_metric=False)
        self.settings = settings  # nested as in config.yaml, for hparams.yaml
        self.framework = framework

    @property
    @rank_zero_experiment
    def experiment(self) -> EventsWriter:
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            # A file per process (a resumed run adds its own), told apart by the process id within a second.
            self._experiment = EventsWriter(os.path.join(self.log_dir, "events"), f".{os.getpid()}")
        return self._experiment

    def _write(self, summary: Summary, step: int) -> None:
        self.experiment.write_event(Event(wall_time=time.time(), step=step, summary=summary))

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, metrics: Any = None,
                        step: int | None = None) -> None:
        # Lightning passes the module's constructor arguments; the run's settings hold each of them and are
        # what the Keras side records. A resumed run records them again, unchanged.
        self.hparams = dict(self.settings)
        experiment, session_start, _ = hparams_summaries(hyperparameters(self.settings, self.framework),
                                                          {tag: None for tag in TAGS})
        # Not the third summary, which would mark the run finished before it starts (Keras writes none).
        self._write(experiment, 0)
        self._write(session_start, 0)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        # Lightning's step counts optimizer steps and it adds the 0-based "epoch" to every epoch-end log.
        metrics = dict(metrics)
        epoch = int(metrics.pop("epoch"))
        for name, value in metrics.items():
            self._write(scalar(name, float(value)), epoch + 1)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        # Lightning's own would flush the writer again after closing it: that is harmless for tensorboardX's
        # SummaryWriter only. Same steps otherwise: hparams.yaml on success, then flush and close.
        if status == "success":
            self.save()
        if self._experiment is not None:
            self._experiment.close()
            self._experiment = None
