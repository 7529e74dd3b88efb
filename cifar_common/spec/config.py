"""Settings of a run: the dataset, the architecture and the training, filled from a YAML file in `configs/`.

A config without an `architecture` section (every run folder written before architectures were data)
is the tutorial's network, with dropout when its legacy `training.dropout` says so.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cifar_common.errors import UserError
from cifar_common.paths import CONFIG_DIR
from cifar_common.spec.layers import Architecture, checked_value
from cifar_common.spec.shapes import validate as validate_architecture
from cifar_common.spec.yaml_form import parse_architecture

SECTIONS = ("dataset", "architecture", "training")
RESHUFFLE, FIXED = "reshuffle", "fixed"  # a new seeded order of the training images every epoch, or one order
DATA_ORDERS = (RESHUFFLE, FIXED)
# Each fit's default order: the one its runs were recorded in before the option existed (Keras 3's seeded
# fit repeats its first order; the port reshuffles), and what those runs are read as (`Run.data_order`).
DEFAULT_DATA_ORDER = {"keras": FIXED, "lightning": RESHUFFLE}


@dataclass(frozen=True)
class DatasetConfig:
    num_classes: int = 10
    image_size: int = 32  # pixels per side
    channels: int = 3


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 31
    batch_size: int = 256  # images per optimizer step
    learning_rate: float = 0.001  # RMSprop step size
    rho: float = 0.9  # RMSprop decay of the squared-gradient average
    epsilon: float = 1e-7  # added inside the square root, as Keras does
    validation_split: float = 0.3  # last fraction of the training arrays
    seed: int = 42
    data_order: str | None = None  # RESHUFFLE or FIXED; None: the fit's own default (DEFAULT_DATA_ORDER)


@dataclass(frozen=True)
class RunConfig:
    dataset: DatasetConfig
    architecture: Architecture
    training: TrainingConfig

    @property
    def variant(self) -> str:
        return self.architecture.variant

    def to_dict(self) -> dict[str, Any]:
        """What config.yaml holds: the whole architecture, in its explicit form."""
        return {"dataset": dataclasses.asdict(self.dataset), "architecture": self.architecture.to_dict(),
                "training": dataclasses.asdict(self.training)}


def default_config_path(dropout: bool) -> Path:
    return CONFIG_DIR / ("dropout.yaml" if dropout else "baseline.yaml")


def tutorial_architecture(dropout: bool) -> Architecture:
    """The tutorial's network, as configs/baseline.yaml or configs/dropout.yaml describes it."""
    return load_config(default_config_path(dropout)).architecture


def _build(cls: type, values: Any, section: str, source: str):
    if not isinstance(values, dict):
        raise UserError(f"{source}: section '{section}' must be a mapping of settings")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"{source}: unknown setting '{section}.{unknown[0]}' (known: {', '.join(fields)})"
        )
    # A setting whose default is None is a string (data_order).
    checked = {name: checked_value(value, type(getattr(cls(), name) or ""), f"{source}: setting '{section}.{name}'")
               for name, value in values.items()}
    return cls(**checked)


def validate(config: RunConfig, source: str) -> RunConfig:
    """Reject settings no run can use, naming the setting."""
    t = config.training
    positive = {"training.epochs": t.epochs, "training.batch_size": t.batch_size,
                "training.learning_rate": t.learning_rate, "training.epsilon": t.epsilon,
                "dataset.num_classes": config.dataset.num_classes}
    for name, value in positive.items():
        if not 0 < value < math.inf:  # also refuses nan and inf, which YAML's .nan and .inf give
            raise UserError(f"{source}: setting '{name}' must be positive and finite, got {value}")
    if not 0.0 < t.validation_split < 1.0:
        raise UserError(f"{source}: setting 'training.validation_split' must be in (0, 1), got {t.validation_split}")
    if not 0.0 <= t.rho < 1.0:
        raise UserError(f"{source}: setting 'training.rho' must be in [0, 1), got {t.rho}")
    if t.seed < 0:
        raise UserError(f"{source}: setting 'training.seed' must be non-negative, got {t.seed}")
    if t.data_order not in (None, *DATA_ORDERS):
        raise UserError(f"{source}: setting 'training.data_order' must be {' or '.join(DATA_ORDERS)}, "
                        f"got {t.data_order!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", config.architecture.name):
        raise UserError(f"{source}: architecture name {config.architecture.name!r} must be letters, digits, "
                        f"'_', '.' or '-' (it names run folders)")
    d = config.dataset
    validate_architecture(config.architecture, (d.image_size, d.image_size, d.channels), d.num_classes,
                          f"{source}: architecture")
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file {path} does not exist (the defaults are in {CONFIG_DIR})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with the sections 'dataset' and 'training' "
                        f"(and optionally 'architecture')")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{path}: unknown section '{unknown[0]}' (known: {', '.join(SECTIONS)})")
    return raw


def _architecture(raw: dict[str, Any], dropout: Any, path: Path) -> Architecture:
    """The architecture section, or the tutorial's network; `dropout` is the legacy `training.dropout`."""
    if dropout is not None and type(dropout) is not bool:
        raise UserError(f"{path}: setting 'training.dropout' must be bool, got {dropout!r}")
    if "architecture" not in raw:
        return tutorial_architecture(bool(dropout))
    architecture = parse_architecture(raw["architecture"], f"{path}: architecture")
    if dropout is not None and dropout != architecture.has_dropout:
        raise UserError(f"{path}: dropout {'requested' if dropout else 'switched off'} (--dropout or "
                        f"'training.dropout'), but the architecture '{architecture.name}' "
                        f"{'has no' if dropout else 'has'} Dropout layers: describe dropout in its "
                        f"architecture section instead")
    return architecture


def load_config(path: Path | str, **overrides: Any) -> RunConfig:
    """Read a YAML config; `overrides` (training settings, None = keep) win over the file.

    `dropout=True` (the `--dropout` flag) asks for a network with Dropout layers: the tutorial's
    dropout variant when the file has no architecture, else it must agree with the architecture.
    """
    path = Path(path)
    raw = _read_yaml(path)
    training = dict(raw.get("training", {}) or {})
    training.update({k: v for k, v in overrides.items() if v is not None})
    architecture = _architecture(raw, training.pop("dropout", None), path)
    config = RunConfig(
        dataset=_build(DatasetConfig, raw.get("dataset", {}) or {}, "dataset", str(path)),
        architecture=architecture,
        training=_build(TrainingConfig, training, "training", str(path)),
    )
    return validate(config, str(path))
