"""The command-line flags both `fit` entry points share, and turning them into a config."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from cifar_common.spec.config import DATA_ORDERS, DEFAULT_DATA_ORDER, RunConfig, default_config_path, load_config

FIT_COMMANDS = {"keras": "python -m keras_reference.fit", "lightning": "python -m lightning_impl.fit"}


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return value


def fit_parser(framework: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=FIT_COMMANDS[framework], description=description)
    parser.add_argument("--dropout", action="store_true",
                        help="the dropout variant (Dropout 0.25 after each pool, 0.5 after dense 512)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML settings (default: configs/baseline.yaml, or configs/dropout.yaml with --dropout)")
    parser.add_argument("--epochs", type=positive_int, help="epochs to train (config default: 31)")
    parser.add_argument("--batch-size", type=positive_int, help="images per step (config default: 256)")
    parser.add_argument("--learning-rate", type=positive_float, help="RMSprop step size (config default: 0.001)")
    parser.add_argument("--seed", type=non_negative_int, help="seed of every random generator (config default: 42)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="cifar-10-batches-py folder (default: $CIFAR10_DIR, else a downloaded cache)")
    parser.add_argument("--out", type=Path, default=None,
                        help="parent folder of the new run folder (default: runs/)")
    parser.add_argument("--subset", type=positive_int, default=None,
                        help="use only the first N training and first N test images (quick runs)")
    parser.add_argument("--data-order", choices=DATA_ORDERS, default=None,
                        help=f"reshuffle: a new seeded order of the training images every epoch (as Keras 2 "
                             f"trains); fixed: one seeded order in every epoch (as seeded Keras 3 trains) "
                             f"(default: {DEFAULT_DATA_ORDER[framework]}, as this command's recorded runs)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="carry on an interrupted run from its last checkpoint (RUN_DIR/checkpoints/), "
                             "with the settings it was started with")
    return parser


def config_from_flags(dropout: bool, config: Path | None, epochs: int | None, batch_size: int | None,
                      learning_rate: float | None, seed: int | None, data_order: str | None = None) -> RunConfig:
    """The config file (or the variant's default) with the flags that were given laid over it."""
    path = config if config is not None else default_config_path(dropout)
    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                 "data_order": data_order}
    if dropout:
        overrides["dropout"] = True
    return load_config(path, **overrides)
