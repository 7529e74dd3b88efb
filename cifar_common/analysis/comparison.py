"""Two finished runs compared on the same test set: every number the comparison page shows, from the
saved predictions, as JSON-ready values."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cifar_common.analysis.stats import (accuracy_interval, agreement, confusion_from_predictions, json_floats,
                                          late_val_accuracy, mcnemar_exact, most_confused_pairs, per_class_recall)
from cifar_common.data import CLASS_NAMES
from cifar_common.errors import UserError
from cifar_common.rundir.folder import Run


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


def val_accuracies(run: Run) -> np.ndarray:
    """The run's val_accuracy per epoch (empty when it recorded none)."""
    return run.history.get("val_accuracy", np.array([]))


def final_val_accuracy(run: Run) -> float | None:
    values = val_accuracies(run)
    return json_floats(values[-1:])[0] if len(values) else None



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
        "late_val_accuracy_a": late_val_accuracy(run_a.history),
        "late_val_accuracy_b": late_val_accuracy(run_b.history),
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
