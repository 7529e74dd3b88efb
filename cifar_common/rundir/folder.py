"""The run folder: one format for both frameworks, so any two runs can be compared.

    config.yaml  launch.json  history.csv  metrics.json  predictions.npz  confusion.csv  plots/  model.*

Every run gets a new folder, and every file in it is written atomically (`rundir.atomic`). `Run` is
the one way a finished folder is read back: by `compare`, by the bands and by the results page.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from cifar_common import plots
from cifar_common.data import CLASS_NAMES
from cifar_common.errors import UserError
from cifar_common.rundir.atomic import write_atomically, write_text
from cifar_common.spec.config import DEFAULT_DATA_ORDER

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # Keras's history keys, the same on both sides
HISTORY_COLUMNS = ("epoch", *EPOCH_METRICS)
LAUNCH_FILE = "launch.json"  # what config.yaml does not hold: --subset and any Trainer flags
PREDICTIONS_FILE = "predictions.npz"
RUN_FILES = ("config.yaml", "history.csv", "metrics.json", PREDICTIONS_FILE, "confusion.csv")
PLOT_FILES = ("loss.png", "accuracy.png", "predictions.png", "confusion.png")
DEFAULT_OUT = Path("runs")


def new_folder(parent: str | Path, name: str) -> Path:
    """Create `parent/name`, or `name-1`, `name-2`, ... : the first that does not exist (never reuse one)."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as error:  # a path under a file, a read-only or missing mount, no permission
        raise UserError(f"cannot create a folder in {parent} ({error.strerror}); choose a folder you "
                        f"can write to") from None
    raise UserError(f"could not create a new folder named {name} under {parent}")


def new_run_dir(out: str | Path | None, framework: str, variant: str, architecture: str = "tutorial") -> Path:
    """Create `OUT/<framework>-<variant>-<time>` (the tutorial's network) or
    `OUT/<framework>-<architecture>-<variant>-<time>` (any other), with its plots/ folder."""
    prefix = f"{framework}-{variant}" if architecture == "tutorial" else f"{framework}-{architecture}-{variant}"
    try:
        run_dir = new_folder(out if out is not None else DEFAULT_OUT, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    except UserError as error:
        raise UserError(f"--out: {error}") from None
    try:
        (run_dir / "plots").mkdir()
    except OSError as error:
        raise UserError(f"--out: cannot create {run_dir / 'plots'} ({error.strerror})") from None
    return run_dir


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_launch(run_dir: Path, framework: str, subset: int | None, trainer: dict[str, Any] | None = None) -> None:
    """How the run was started beyond its config (which fit command, the subset, any Trainer flags), so
    that it can be resumed with the same settings."""
    launch = {"framework": framework, "subset": subset, "trainer": trainer}
    write_text(run_dir / LAUNCH_FILE, json.dumps(launch, indent=2) + "\n")


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



def history_columns(rows: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    return {key: np.array([row[key] for row in rows]) for key in HISTORY_COLUMNS}


def write_results(run_dir: Path, history_rows: Sequence[dict[str, float]], metrics: dict[str, Any],
                  test_images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, confusion: np.ndarray) -> None:
    """history, metrics, predictions, the confusion matrix (each framework computes its own) and plots."""
    y_pred = probs.argmax(axis=1)
    write_history(run_dir, list(history_rows))
    write_predictions(run_dir, y_true, probs)
    write_confusion(run_dir, confusion)
    write_metrics(run_dir, metrics)
    title = f"{metrics['framework']} {metrics['variant']}"
    (run_dir / "plots").mkdir(exist_ok=True)  # a run folder copied without its empty plots/ still resumes
    plots.plot_history(history_columns(history_rows), run_dir / "plots", title)
    plots.plot_predictions(test_images[:18], y_true[:18], y_pred[:18], CLASS_NAMES,
                           run_dir / "plots" / "predictions.png")
    plots.plot_confusion(confusion, CLASS_NAMES, run_dir / "plots" / "confusion.png",
                         f"{title}: test confusion matrix")


def summary_line(test_accuracy: float, run_dir: Path) -> str:
    return f"test accuracy {test_accuracy:.4f}  run folder {run_dir}"


@dataclass(frozen=True)
class Predictions:
    """predictions.npz and confusion.csv of a run: the test labels, each image's probabilities, the counts."""
    y_true: np.ndarray
    probs: np.ndarray
    confusion: np.ndarray


@dataclass(frozen=True)
class Run:
    """A finished run folder read back: settings, history and metrics at once; predictions on first use.

    `path` is how reports name the run (for recorded runs, relative to the reports folder); `folder`
    is where its files are.
    """
    path: Path
    config: dict[str, Any]
    history: dict[str, np.ndarray]
    metrics: dict[str, Any]
    folder: Path = field(repr=False, compare=False)

    @property
    def has_predictions(self) -> bool:
        return (self.folder / PREDICTIONS_FILE).is_file()

    @functools.cached_property
    def predictions(self) -> Predictions:
        return read_predictions(self.folder)

    @property
    def y_true(self) -> np.ndarray:
        return self.predictions.y_true

    @property
    def probs(self) -> np.ndarray:
        return self.predictions.probs

    @property
    def confusion(self) -> np.ndarray:
        return self.predictions.confusion

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def data_order(self) -> str:
        """The order the run trained in: recorded since `--data-order` exists; before, its framework's default."""
        return self.metrics.get("data_order") or DEFAULT_DATA_ORDER[self.metrics["framework"]]

    @property
    def label(self) -> str:
        return f"{self.metrics.get('framework', '?')}/{self.metrics.get('variant', '?')} ({self.path.name})"


def read_history(run_dir: Path) -> dict[str, np.ndarray]:
    """history.csv as one array per column."""
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(row[key]) for row in rows]) for key in HISTORY_COLUMNS}


def read_confusion(run_dir: Path) -> np.ndarray:
    """confusion.csv: counts, rows truth (kept also by runs recorded before predictions were)."""
    return np.loadtxt(run_dir / "confusion.csv", delimiter=",", dtype=np.int64, ndmin=2)


def read_predictions(run_dir: Path) -> Predictions:
    try:
        with np.load(run_dir / PREDICTIONS_FILE) as npz:
            y_true, probs = npz["y_true"], npz["probs"]
        confusion = read_confusion(run_dir)
        if probs.ndim != 2 or len(probs) != len(y_true) or confusion.shape != (probs.shape[1],) * 2:
            raise ValueError(f"probs {probs.shape}, y_true {y_true.shape} and confusion {confusion.shape} "
                             f"do not fit together")
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{run_dir}: cannot read run folder ({type(error).__name__}: {error})") from None
    return Predictions(y_true, probs, confusion)


def read_run(run_dir: str | Path, shown_as: Path | None = None, complete: bool = True) -> Run:
    """The run in `run_dir`, named `shown_as` in reports (default: `run_dir`). `complete`: every file of
    RUN_FILES must be there and the predictions are read and checked now; else only history and metrics
    are needed (recorded runs from before predictions were kept)."""
    run_dir = Path(run_dir)
    needed = RUN_FILES if complete else ("history.csv", "metrics.json")
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a complete run folder: missing {', '.join(missing)}")
    try:
        config_file = run_dir / "config.yaml"
        run = Run(path=shown_as if shown_as is not None else run_dir,
                  config=yaml.safe_load(config_file.read_text()) if config_file.is_file() else {},
                  history=read_history(run_dir),
                  metrics=json.loads((run_dir / "metrics.json").read_text()),
                  folder=run_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{run_dir}: cannot read run folder ({type(error).__name__}: {error})") from None
    if complete:
        run.predictions  # noqa: B018  (read and checked now, so a damaged folder fails before any output)
    return run
