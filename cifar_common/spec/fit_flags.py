"""The command-line flags both `fit` entry points share, and turning them into a config."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from cifar_common.spec.config import RunConfig, default_config_path, load_config


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


def fit_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
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
    return parser


def config_from_flags(dropout: bool, config: Path | None, epochs: int | None, batch_size: int | None,
                      learning_rate: float | None, seed: int | None) -> RunConfig:
    """The config file (or the variant's default) with the flags that were given laid over it."""
    path = config if config is not None else default_config_path(dropout)
    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    if dropout:
        overrides["dropout"] = True
    return load_config(path, **overrides)
