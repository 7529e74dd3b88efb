"""Train the Lightning port of the Keras CIFAR-10 CNN and write a run folder.

    python -m lightning_impl.fit --dropout
    python -m lightning_impl.fit --resume runs/lightning-dropout-20261129-165251   # after a crash

The same steps, flags and run folder as `python -m keras_reference.fit`: Keras's split, batch
size, epochs and RMSprop; per-epoch history, curves, the model (a Lightning checkpoint,
`model.ckpt`, reloaded before testing), test loss and accuracy, 18 predictions and the confusion
matrix. The recorded 31-epoch dropout runs reached 0.76 and 0.78 test accuracy (reports/README.md, the results page).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torchmetrics
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.rundir.fit_command import settings_from, start_run_folder, train_and_report
from cifar_common.rundir.folder import write_results
from cifar_common.rundir.metrics_json import build_metrics, portable_command
from cifar_common.rundir.resume import Checkpoint
from cifar_common.spec.config import RunConfig
from cifar_common.spec.fit_flags import FIT_COMMANDS, fit_parser, positive_int
from lightning_impl.callbacks import (CtrlC, HistoryFile, HistoryWriter, RandomState, ResumeHint,
                                      StopOnNonFiniteLoss)
from lightning_impl.checkpoint_io import LAST, AtomicCheckpointIO, epochs_done, resume_checkpoint
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.module import CifarClassifier
from lightning_impl.tensorboard_logger import EpochTensorBoardLogger

FRAMEWORK = "lightning"
COMMAND = FIT_COMMANDS[FRAMEWORK]
MODEL = "model.ckpt"
RUN_DIR_ENV = "LIGHTNING_IMPL_RUN_DIR"  # rank 0's run folder, for the other DDP processes


@dataclass(frozen=True)
class TrainerFlags:
    """The Lightning Trainer flags a run was started with (kept in the run folder for --resume)."""
    accelerator: str = "cpu"
    devices: str = "1"
    precision: str = "32-true"  # as Keras trains
    strategy: str = "auto"
    num_nodes: int = 1


def lightning_parser() -> argparse.ArgumentParser:
    parser = fit_parser(FRAMEWORK, __doc__.splitlines()[0])
    group = parser.add_argument_group("Lightning Trainer (same meanings as Lightning's flags)")
    defaults = TrainerFlags()
    group.add_argument("--accelerator", help=f"cpu, gpu, auto, ... (default: {defaults.accelerator})")
    group.add_argument("--devices", help=f"number of devices or 'auto' (default: {defaults.devices})")
    group.add_argument("--precision",
                       help=f"32-true, bf16-mixed, 16-mixed, ... (default: {defaults.precision}, as Keras trains)")
    group.add_argument("--strategy", help=f"auto, ddp, ... (default: {defaults.strategy})")
    group.add_argument("--num-nodes", type=positive_int,
                       help=f"machines taking part, each running this command (default: {defaults.num_nodes})")
    return parser


def trainer_flags_from(args: argparse.Namespace) -> TrainerFlags:
    given = {field.name: getattr(args, field.name) for field in fields(TrainerFlags)}
    return TrainerFlags(**{name: value for name, value in given.items() if value is not None})


def check_trainer_flags(flags: TrainerFlags) -> None:
    """Refuse flags no Trainer can run with, before any work: Lightning's own checks, plus cores."""
    named = " ".join(f"--{name} {value}" for name, value in asdict(flags).items())
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # the real Trainer prints the device summary later
    try:
        trainer = L.Trainer(**asdict(flags), logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
    except (MisconfigurationException, ValueError, TypeError, ImportError) as error:
        raise UserError(f"{named}: {error}") from None
    finally:
        lightning_log.setLevel(level)
    cores = os.cpu_count() or 1
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cores:
        raise UserError(f"--devices {flags.devices}: this machine has {cores} CPU cores, so at most "
                        f"{cores} CPU processes")


def build_trainer(run_dir: Path, epochs: int, flags: TrainerFlags,
                  callbacks: list[Callback] | None = None, logger: Logger | bool = False) -> L.Trainer:
    # checkpoints/last.ckpt after every epoch, as the Keras side keeps checkpoints/last.keras; replaced
    # only by a verified new one, the one before kept (AtomicCheckpointIO). Taken at the very end of the
    # epoch, after the other callbacks have checked and recorded it, and listed first, so that other
    # Checkpoint callbacks (HistoryFile) run after it. (save_last=True with save_top_k=0 would save only
    # when fit ends.)
    checkpoints = ModelCheckpoint(dirpath=run_dir / LAST.parent, filename=LAST.stem, save_top_k=1,
                                  enable_version_counter=False, save_on_train_epoch_end=True)
    return L.Trainer(
        **asdict(flags), max_epochs=epochs, default_root_dir=run_dir, logger=logger,
        callbacks=[checkpoints, TQDMProgressBar(), *(callbacks or [])],
        plugins=[AtomicCheckpointIO(keep_previous_of=run_dir / LAST)],
        num_sanity_val_steps=0,  # Keras validates only after each epoch
        use_distributed_sampler=False,  # GlobalBatches shares each global batch out itself
    )


def new_module(config: RunConfig) -> CifarClassifier:
    t = config.training
    return CifarClassifier(architecture=config.architecture.to_dict(), learning_rate=t.learning_rate, rho=t.rho,
                           epsilon=t.epsilon, num_classes=config.dataset.num_classes)


def fit_model(config: RunConfig, datamodule: Cifar10DataModule, run_dir: Path, flags: TrainerFlags,
              resume: Checkpoint | None) -> tuple[L.Trainer, HistoryWriter, float]:
    """Fit (or carry on fitting from `resume`) and save `model.ckpt`; the Trainer, history and fit seconds."""
    t = config.training
    L.seed_everything(t.seed, verbose=False)
    module = new_module(config)
    history = HistoryWriter(run_dir)
    # StopOnNonFiniteLoss first: a bad epoch stops before it is recorded.
    callbacks = [StopOnNonFiniteLoss(), history, HistoryFile(history), RandomState(), ResumeHint(run_dir, COMMAND),
                 CtrlC()]
    trainer = build_trainer(run_dir, t.epochs, flags, callbacks,
                            logger=EpochTensorBoardLogger(run_dir, config.to_dict(), FRAMEWORK))
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume.path if resume is not None else None)
    except SIGTERMException:  # a SystemExit with status 0: exit as a terminated process instead
        raise SystemExit(128 + signal.SIGTERM) from None
    fit_seconds = time.perf_counter() - started
    # Every process takes part (it is collective under DDP); rank 0 writes, atomically, as Lightning does.
    trainer.save_checkpoint(run_dir / MODEL)
    return trainer, history, fit_seconds


def evaluate_and_record(config: RunConfig, datamodule: Cifar10DataModule, run_dir: Path, flags: TrainerFlags,
                        history: HistoryWriter, fit_seconds: float) -> dict:
    """Reload `model.ckpt`, test it in one pass and write the results; returns metrics.json's content."""
    reloaded = CifarClassifier.load_from_checkpoint(run_dir / MODEL, map_location="cpu")
    tester = L.Trainer(accelerator=flags.accelerator, devices=1, precision=flags.precision, logger=False,
                       enable_progress_bar=False, enable_model_summary=False)
    results = tester.test(reloaded, datamodule=datamodule, verbose=False)[0]
    probs = torch.cat(reloaded.test_probabilities).numpy()
    confusion = reloaded.test_confusion.compute().cpu().numpy()
    metrics = build_metrics(
        FRAMEWORK, config,
        parameter_count=sum(p.numel() for p in reloaded.network.parameters() if p.requires_grad),
        train_images=len(datamodule.train_labels), test_images=len(datamodule.test_labels),
        test_loss=results["test_loss"], test_accuracy=results["test_accuracy"], history_rows=history.rows,
        fit_seconds=fit_seconds, epochs_fitted=len(history.rows) - history.resumed_after,
        threads=torch.get_num_threads(),
        versions={"numpy": np.__version__, "torch": torch.__version__, "lightning": L.__version__,
                  "torchmetrics": torchmetrics.__version__},
        command=portable_command(COMMAND, sys.argv[1:]),
        resumed_after_epoch=history.resumed_after,  # fit_seconds counts the epochs after it
        **asdict(flags),
    )
    write_results(run_dir, history.rows, metrics, datamodule.data.x_test, datamodule.data.y_test,
                  probs, confusion)
    return metrics


def train(config: RunConfig, datamodule: Cifar10DataModule, run_dir: Path,
          flags: TrainerFlags = TrainerFlags(), resume: Checkpoint | None = None) -> dict:
    """Fit, then (global rank 0 alone) test and record; returns metrics.json's content ({} on other ranks)."""
    trainer, history, fit_seconds = fit_model(config, datamodule, run_dir, flags, resume)
    if torch.distributed.is_initialized():  # rank 0 tests alone below; metrics must not wait on the others
        torch.distributed.destroy_process_group()
    if not trainer.is_global_zero:
        return {}
    return evaluate_and_record(config, datamodule, run_dir, flags, history, fit_seconds)


def started_by_launcher() -> bool:
    """True in the processes a DDP launcher (Lightning's, torchrun, SLURM) starts besides global rank 0."""
    return rank_zero_only.rank != 0 or int(os.environ.get("NODE_RANK", 0)) != 0


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = lightning_parser().parse_args(argv)
    settings = settings_from(args, FRAMEWORK, [field.name for field in fields(TrainerFlags)])
    config, resume_from = settings.config, settings.resume_from
    flags = TrainerFlags(**settings.launch["trainer"]) if resume_from is not None else trainer_flags_from(args)
    check_trainer_flags(flags)
    checkpoint = resume_checkpoint(resume_from, new_module(config)) if resume_from is not None else None
    t = config.training
    datamodule = Cifar10DataModule(args.data_dir, t.batch_size, t.validation_split, t.seed, settings.subset,
                                   data_order=t.data_order)
    datamodule.prepare_data()  # bad data fails here, before a run folder exists
    if resume_from is not None:
        run_dir = resume_from
    elif not started_by_launcher():
        run_dir = start_run_folder(args.out, FRAMEWORK, settings, asdict(flags))
        os.environ[RUN_DIR_ENV] = str(run_dir.resolve())  # inherited by the processes DDP starts
    else:
        # Only global rank 0 writes; other nodes, which do not inherit the variable, get a scratch folder.
        run_dir = Path(os.environ.get(RUN_DIR_ENV) or tempfile.mkdtemp(prefix="lightning-impl-rank-"))
    return train_and_report(lambda: train(config, datamodule, run_dir, flags, resume=checkpoint), FRAMEWORK,
                            run_dir, LAST, epochs_done)


if __name__ == "__main__":
    sys.exit(main())
