"""Statistics for comparing two runs on the same test set (numpy and scipy only).

Accuracy comes with a Wilson score interval; whether the two runs differ is McNemar's exact
test, which looks only at the images exactly one of the runs gets right, so it accounts for the
two runs being scored on the same images.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.stats import binomtest

from cifar_common.data import CLASS_NAMES
from cifar_common.errors import UserError
from cifar_common.runs import Run, confusion_from_predictions

LATE_EPOCHS = 5  # epochs averaged by late_val_accuracy


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


def check_same_test_set(run_a: Run, run_b: Run) -> None:
    """Paired statistics only mean something when both runs scored the same images in the same order."""
    if len(run_a.y_true) != len(run_b.y_true):
        raise UserError(f"the runs were tested on different test sets: {len(run_a.y_true)} images in "
                        f"{run_a.path}, {len(run_b.y_true)} in {run_b.path}")
    if not np.array_equal(run_a.y_true, run_b.y_true):
        differing = int(np.sum(run_a.y_true != run_b.y_true))
        raise UserError(f"the runs were tested on different test sets: the true labels of {differing} of "
                        f"{len(run_a.y_true)} images differ between {run_a.path} and {run_b.path}")
    if len(run_a.y_true) == 0:
        raise UserError(f"{run_a.path} and {run_b.path} have no test predictions to compare")
    if run_a.probs.shape[1] != run_b.probs.shape[1]:
        raise UserError(f"the runs predict different numbers of classes: {run_a.probs.shape[1]} and "
                        f"{run_b.probs.shape[1]}")


def class_names_for(num_classes: int) -> Sequence[str]:
    return CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(i) for i in range(num_classes))


def named_pairs(confusion: np.ndarray, names: Sequence[str], k: int = 3) -> list[dict[str, Any]]:
    return [{"truth": names[r], "predicted": names[c], "count": count}
            for r, c, count in most_confused_pairs(confusion, k)]


def json_floats(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, with nan as null (JSON has no nan)."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def val_accuracies(run: Run) -> np.ndarray:
    """The run's val_accuracy per epoch (empty when it recorded none)."""
    return run.history.get("val_accuracy", np.array([]))


def final_val_accuracy(run: Run) -> float | None:
    values = val_accuracies(run)
    return json_floats(values[-1:])[0] if len(values) else None


def late_val_accuracy(run: Run, epochs: int = LATE_EPOCHS) -> dict[str, Any] | None:
    """Mean and std (n - 1) of val_accuracy over the last `epochs` epochs.

    A steadier read than the final epoch alone: late in the recorded 31-epoch runs val_accuracy
    moved by up to about two points from one epoch to the next (RMSprop, step size 1e-3).
    """
    values = val_accuracies(run)[-epochs:]
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    return {"epochs": len(values), "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def compare_runs(run_a: Run, run_b: Run) -> dict[str, Any]:
    """Everything the comparison report shows, as JSON-ready values (lists, floats, None for nan).

    Accuracy, agreement, McNemar, recall and confusions all come from the saved predictions, so
    the numbers agree with each other; whether each run's own confusion.csv matches them is
    recorded in `stored_confusion_matches_a/_b`.
    """
    check_same_test_set(run_a, run_b)
    y_true = run_a.y_true
    num_classes = run_a.probs.shape[1]
    names = class_names_for(num_classes)
    pred_a, pred_b = run_a.y_pred, run_b.y_pred
    correct_a, correct_b = pred_a == y_true, pred_b == y_true
    confusion_a = confusion_from_predictions(y_true, pred_a, num_classes)
    confusion_b = confusion_from_predictions(y_true, pred_b, num_classes)
    recall_a, recall_b = per_class_recall(confusion_a), per_class_recall(confusion_b)
    mcnemar = mcnemar_exact(correct_a, correct_b)
    n = len(y_true)
    return {
        "label_a": run_a.label,
        "label_b": run_b.label,
        "path_a": str(run_a.path),
        "path_b": str(run_b.path),
        "test_images": n,
        "class_names": list(names),
        "accuracy_a": float(np.mean(correct_a)),
        "accuracy_b": float(np.mean(correct_b)),
        "interval_a": list(accuracy_interval(int(correct_a.sum()), n)),
        "interval_b": list(accuracy_interval(int(correct_b.sum()), n)),
        "interval_level": 0.95,
        "final_val_accuracy_a": final_val_accuracy(run_a),
        "final_val_accuracy_b": final_val_accuracy(run_b),
        "late_val_accuracy_a": late_val_accuracy(run_a),
        "late_val_accuracy_b": late_val_accuracy(run_b),
        "agreement": agreement(pred_a, pred_b),
        "mcnemar_b": mcnemar["b"],
        "mcnemar_c": mcnemar["c"],
        "mcnemar_p": mcnemar["p"],
        "recall_a": json_floats(recall_a),
        "recall_b": json_floats(recall_b),
        "recall_change": json_floats(recall_b - recall_a),
        "confusion_a": confusion_a.tolist(),
        "confusion_b": confusion_b.tolist(),
        "stored_confusion_matches_a": bool(np.array_equal(run_a.confusion, confusion_a)),
        "stored_confusion_matches_b": bool(np.array_equal(run_b.confusion, confusion_b)),
        "confused_pairs_a": named_pairs(confusion_a, names),
        "confused_pairs_b": named_pairs(confusion_b, names),
    }
