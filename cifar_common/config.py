"""Settings of a run: two frozen dataclasses filled from a YAML file in `configs/`."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cifar_common.errors import UserError
from cifar_common.paths import REPO_ROOT

# An installed package ships configs/ as cifar_common/configs (pyproject.toml); a clone has it at the top.
_SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
CONFIG_DIR = _SHIPPED_CONFIGS if _SHIPPED_CONFIGS.is_dir() else REPO_ROOT / "configs"


@dataclass(frozen=True)
class DatasetConfig:
    num_classes: int = 10
    image_size: int = 32  # pixels per side
    channels: int = 3


@dataclass(frozen=True)
class TrainingConfig:
    dropout: bool = False
    epochs: int = 31
    batch_size: int = 256  # images per optimizer step
    learning_rate: float = 0.001  # RMSprop step size
    rho: float = 0.9  # RMSprop decay of the squared-gradient average
    epsilon: float = 1e-7  # added inside the square root, as Keras does
    validation_split: float = 0.3  # last fraction of the training arrays
    seed: int = 42

    @property
    def variant(self) -> str:
        return "dropout" if self.dropout else "baseline"


@dataclass(frozen=True)
class RunConfig:
    dataset: DatasetConfig
    training: TrainingConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_config_path(dropout: bool) -> Path:
    return CONFIG_DIR / ("dropout.yaml" if dropout else "baseline.yaml")


def _build(cls: type, values: Any, section: str, source: str):
    if not isinstance(values, dict):
        raise UserError(f"{source}: section '{section}' must be a mapping of settings")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"{source}: unknown setting '{section}.{unknown[0]}' (known: {', '.join(fields)})"
        )
    checked = {}
    for name, value in values.items():
        expected = type(getattr(cls(), name))
        # YAML gives ints where floats are meant (`epochs: 1` vs `learning_rate: 1`); bools are not numbers.
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise UserError(
                f"{source}: setting '{section}.{name}' must be {expected.__name__}, "
                f"got {value!r} ({type(value).__name__})"
            )
        checked[name] = value
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
    return config


def load_config(path: Path | str, **overrides: Any) -> RunConfig:
    """Read a YAML config; `overrides` (training settings, None = keep) win over the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist (the defaults are in {CONFIG_DIR})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected the sections 'dataset' and 'training'")
    unknown = sorted(set(raw) - {"dataset", "training"})
    if unknown:
        raise UserError(f"{path}: unknown section '{unknown[0]}' (known: dataset, training)")
    training = dict(raw.get("training", {}) or {})
    training.update({k: v for k, v in overrides.items() if v is not None})
    config = RunConfig(
        dataset=_build(DatasetConfig, raw.get("dataset", {}) or {}, "dataset", str(path)),
        training=_build(TrainingConfig, training, "training", str(path)),
    )
    return validate(config, str(path))


def config_from_dict(values: dict[str, Any], source: str = "config") -> RunConfig:
    return validate(RunConfig(
        dataset=_build(DatasetConfig, values.get("dataset", {}), "dataset", source),
        training=_build(TrainingConfig, values.get("training", {}), "training", source),
    ), source)
