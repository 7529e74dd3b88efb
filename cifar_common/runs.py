"""The run folder: one format for both frameworks, so any two runs can be compared.

    config.yaml  launch.json  history.csv  metrics.json  predictions.npz  confusion.csv  plots/  model.*

Every file is written to a temporary name and renamed, so a killed run never leaves half a file,
and every run gets a new folder.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from cifar_common.errors import UserError

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
LAUNCH_FILE = "launch.json"  # what config.yaml does not hold: --subset and any Trainer flags
RUN_FILES = ("config.yaml", "history.csv", "metrics.json", "predictions.npz", "confusion.csv")
PLOT_FILES = ("loss.png", "accuracy.png", "predictions.png", "confusion.png")
DEFAULT_OUT = Path("runs")


def new_folder(parent: str | Path, name: str) -> Path:
    """Create `parent/name`, or `name-1`, `name-2`, ... : the first that does not exist (never reuse one)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise UserError(f"could not create a new folder named {name} under {parent}")


def new_run_dir(out: str | Path | None, framework: str, variant: str, architecture: str = "tutorial") -> Path:
    """Create `OUT/<framework>-<variant>-<time>` (the tutorial's network) or
    `OUT/<framework>-<architecture>-<variant>-<time>` (any other), with its plots/ folder."""
    prefix = f"{framework}-{variant}" if architecture == "tutorial" else f"{framework}-{architecture}-{variant}"
    run_dir = new_folder(out if out is not None else DEFAULT_OUT, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    (run_dir / "plots").mkdir()
    return run_dir


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` and rename tmp to `path`: readers see the old file or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_launch(run_dir: Path, subset: int | None, trainer: dict[str, Any] | None = None) -> None:
    """How the run was started beyond its config, so that it can be resumed with the same settings."""
    write_text(run_dir / LAUNCH_FILE, json.dumps({"subset": subset, "trainer": trainer}, indent=2) + "\n")


def read_launch(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / LAUNCH_FILE).read_text())


def write_history(run_dir: Path, rows: list[dict[str, float]]) -> None:
    """history.csv: one row per epoch, epochs counted from 1 as Keras prints them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in HISTORY_COLUMNS})
    write_text(run_dir / "history.csv", buffer.getvalue())


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def write_predictions(run_dir: Path, y_true: np.ndarray, probs: np.ndarray) -> None:
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs {probs.shape} does not match y_true {y_true.shape}")

    def save(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object, so numpy does not append another .npz
            np.savez_compressed(f, y_true=y_true, probs=probs)

    write_atomically(run_dir / "predictions.npz", save)


def write_confusion(run_dir: Path, confusion: np.ndarray) -> None:
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(confusion, dtype=np.int64), fmt="%d", delimiter=",")
    write_text(run_dir / "confusion.csv", buffer.getvalue())


def confusion_from_predictions(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = truth, columns = predicted."""
    return np.bincount(num_classes * np.asarray(y_true) + np.asarray(y_pred),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Run:
    """A finished run folder, read back."""
    path: Path
    config: dict[str, Any]
    history: dict[str, np.ndarray]
    metrics: dict[str, Any]
    y_true: np.ndarray
    probs: np.ndarray
    confusion: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def label(self) -> str:
        return f"{self.metrics.get('framework', '?')}/{self.metrics.get('variant', '?')} ({self.path.name})"


def read_history(run_dir: Path) -> dict[str, np.ndarray]:
    """history.csv as one array per column."""
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(row[key]) for row in rows]) for key in HISTORY_COLUMNS}


def read_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a complete run folder: missing {', '.join(missing)}")
    try:
        history = read_history(run_dir)
        with np.load(run_dir / "predictions.npz") as npz:
            y_true, probs = npz["y_true"], npz["probs"]
        confusion = np.loadtxt(run_dir / "confusion.csv", delimiter=",", dtype=np.int64, ndmin=2)
        if probs.ndim != 2 or len(probs) != len(y_true) or confusion.shape != (probs.shape[1],) * 2:
            raise ValueError(f"probs {probs.shape}, y_true {y_true.shape} and confusion {confusion.shape} "
                             f"do not fit together")
        return Run(
            path=run_dir,
            config=yaml.safe_load((run_dir / "config.yaml").read_text()),
            history=history,
            metrics=json.loads((run_dir / "metrics.json").read_text()),
            y_true=y_true,
            probs=probs,
            confusion=confusion,
        )
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{run_dir}: cannot read run folder ({type(error).__name__}: {error})") from None
