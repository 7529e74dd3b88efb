"""Writing a finished run's results and figures, the same way for both frameworks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cifar_common import plots, runs
from cifar_common.data import CLASS_NAMES


def history_columns(rows: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    return {key: np.array([row[key] for row in rows]) for key in runs.HISTORY_COLUMNS}


def write_results(run_dir: Path, history_rows: Sequence[dict[str, float]], metrics: dict[str, Any],
                  test_images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, confusion: np.ndarray) -> None:
    """history, metrics, predictions, the confusion matrix (each framework computes its own) and plots."""
    y_pred = probs.argmax(axis=1)
    runs.write_history(run_dir, list(history_rows))
    runs.write_predictions(run_dir, y_true, probs)
    runs.write_confusion(run_dir, confusion)
    runs.write_metrics(run_dir, metrics)
    title = f"{metrics['framework']} {metrics['variant']}"
    (run_dir / "plots").mkdir(exist_ok=True)  # a run folder copied without its empty plots/ still resumes
    plots.plot_history(history_columns(history_rows), run_dir / "plots", title)
    plots.plot_predictions(test_images[:18], y_true[:18], y_pred[:18], CLASS_NAMES,
                           run_dir / "plots" / "predictions.png")
    plots.plot_confusion(confusion, CLASS_NAMES, run_dir / "plots" / "confusion.png",
                         f"{title}: test confusion matrix")


def summary_line(test_accuracy: float, run_dir: Path) -> str:
    return f"test accuracy {test_accuracy:.4f}  run folder {run_dir}"
