"""The steps both `fit` commands share, around what each framework does its own way.

    settings = settings_from(args, FRAMEWORK)      # from the flags, or from the run folder for --resume
    ...                                            # the framework checks its own flags and the data
    run_dir = settings.resume_from or start_run_folder(args.out, FRAMEWORK, settings)
    return train_and_report(lambda: train(...), FRAMEWORK, run_dir, LAST, epochs_done)
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cifar_common.errors import UserError, WriteFailed
from cifar_common.rundir.folder import new_run_dir, summary_line, write_config, write_launch
from cifar_common.rundir.resume import (Loader, framework_of, open_unfinished_run, refuse_setting_flags,
                                        with_carry_on_hint)
from cifar_common.spec.config import DEFAULT_DATA_ORDER, RunConfig, load_config
from cifar_common.spec.fit_flags import FIT_COMMANDS, config_from_flags


@dataclass(frozen=True)
class RunSettings:
    """What a run trains with: its config (data order filled in), subset and, on --resume, its folder
    and launch.json."""
    config: RunConfig
    subset: int | None
    resume_from: Path | None = None
    launch: dict[str, Any] = dataclasses.field(default_factory=dict)


def with_data_order(config: RunConfig, framework: str) -> RunConfig:
    """`config` with its data order, the framework's default when it names none (as runs recorded before
    the option were made, so they resume in their own order)."""
    if config.training.data_order is not None:
        return config
    return dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                     data_order=DEFAULT_DATA_ORDER[framework]))


def settings_from(args: argparse.Namespace, framework: str, more_setting_flags: Sequence[str] = ()) -> RunSettings:
    """A new run's settings from the flags; with --resume, the unfinished run folder's own, refusing
    flags that would change them and another framework's folder."""
    if args.resume is None:
        config = config_from_flags(args.dropout, args.config, args.epochs, args.batch_size, args.learning_rate,
                                   args.seed, args.data_order)
        return RunSettings(with_data_order(config, framework), args.subset)
    refuse_setting_flags(args, more_setting_flags)
    launch = open_unfinished_run(args.resume, FIT_COMMANDS[framework])
    started_by = framework_of(args.resume, launch)
    if started_by not in (None, framework):
        raise UserError(f"--resume {args.resume}: a run folder of {FIT_COMMANDS[started_by]}; resume it with that "
                        f"command")
    config = load_config(args.resume / "config.yaml")
    return RunSettings(with_data_order(config, framework), launch["subset"], args.resume, launch)


def start_run_folder(out: Path | None, framework: str, settings: RunSettings,
                     trainer: dict[str, Any] | None = None) -> Path:
    """A new run folder under `out` holding config.yaml and launch.json (framework, subset, Trainer flags)."""
    config = settings.config
    run_dir = new_run_dir(out, framework, config.variant, config.architecture.name)
    write_config(run_dir, config.to_dict())
    write_launch(run_dir, framework, settings.subset, trainer)
    return run_dir


def train_and_report(train: Callable[[], dict], framework: str, run_dir: Path, last: Path, epochs_done: Loader) -> int:
    """Run `train` (fit, test, record; metrics.json's content), then print the summary line. A failed
    write names the last good checkpoint and the command that carries on from it."""
    try:
        metrics = train()
    except WriteFailed as failure:
        raise with_carry_on_hint(failure, FIT_COMMANDS[framework], run_dir, run_dir / last, epochs_done) from None
    if metrics:  # {} in the processes of a distributed run besides global rank 0
        print(summary_line(metrics["test_accuracy"], run_dir))
    return 0
