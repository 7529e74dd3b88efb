"""Statistics of finished runs (numpy and scipy only): accuracy intervals, paired tests on one test set,
recall and confusion counted from predictions, and the late-epoch val_accuracy every report uses.

Accuracy comes with a Wilson score interval; whether two runs differ is McNemar's exact test, which
looks only at the images exactly one of the runs gets right, so it accounts for the two runs being
scored on the same images.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import binomtest

LATE_EPOCHS = 5  # epochs averaged by late_val_accuracy


def confusion_from_predictions(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = truth, columns = predicted."""
    return np.bincount(num_classes * np.asarray(y_true) + np.asarray(y_pred),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a share of `correct` out of `n` (stays inside [0, 1], unlike Wald's)."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    interval = binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Share of images on which both runs predict the same class, right or wrong."""
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    check_same_length(pred_a, pred_b)
    return float(np.mean(pred_a == pred_b))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact two-sided test on paired right/wrong outcomes.

    b = images A gets right and B wrong, c = the reverse. Under "no difference" each of the
    b + c discordant images is equally likely to fall either way, so p is a binomial tail.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    check_same_length(correct_a, correct_b)
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p": p}


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Right predictions over images of each true class (rows = truth); nan for a class with no images."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1)
    recall = np.full(len(confusion), np.nan)
    present = totals > 0
    recall[present] = np.diag(confusion)[present] / totals[present]
    return recall


def most_confused_pairs(confusion: np.ndarray, k: int = 3) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells as (truth, predicted, count), largest first.

    Ties go to the smaller truth index, then the smaller predicted index; cells with a count of
    zero are no confusion and are left out, so fewer than k pairs can come back.
    """
    confusion = np.asarray(confusion)
    cells = [(int(confusion[r, c]), r, c) for r, c in np.ndindex(confusion.shape)
             if r != c and confusion[r, c] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(r, c, count) for count, r, c in cells[:k]]


def check_same_length(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} and {b.shape}")


def json_floats(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, with nan as null (JSON has no nan)."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]



def late_val_accuracy(history: dict[str, np.ndarray], epochs: int = LATE_EPOCHS) -> dict[str, Any] | None:
    """Mean and std (n - 1) of val_accuracy over the last `epochs` epochs (None when there are none).

    A steadier read than the final epoch alone: late in the recorded 31-epoch runs val_accuracy
    moved by up to about two points from one epoch to the next (RMSprop, step size 1e-3).
    """
    values = history.get("val_accuracy", np.array([]))[-epochs:]
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    return {"epochs": len(values), "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}
