"""Error patterns across seeds: the port's confusion matrices and per-image agreement against Keras's,
set beside the spread that seeds alone give (numpy and scipy only).

One pair of runs mostly shows seed noise. With n runs a side, each cell of the row-normalised
confusion matrix has a mean and a spread per framework, and port − Keras per cell is read as a Welch
t: the difference of the means over sqrt(s_K²/n_K + s_P²/n_P). A cell where both spreads are zero
(typically the same count in every run) has no t; it is marked, not divided. Agreement (the share
of test images two runs give the same class) grows with accuracy, so a Keras-vs-port pair is read
against same-framework pairs and their accuracies, not against a fixed number.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

SIGNIFICANCE = 0.05  # two-sided, per cell; the count of such cells is set against what chance gives


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row (true class) divided by its total: the share of each class predicted as each class."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=-1, keepdims=True)
    if np.any(totals == 0):
        raise ValueError("a confusion matrix has a class with no images: its row cannot be normalised")
    return confusion / totals


def welch(keras: np.ndarray, port: np.ndarray) -> dict[str, np.ndarray]:
    """Per element of the stacked samples (first axis: runs), port − Keras as a Welch t and its p-value.

    Needs 2 runs a side (a spread). A side whose values are all equal has spread exactly zero (not the
    rounding residue of its mean); where both spreads are zero, t and p are nan and `both_zero` is
    True; the difference is still given.
    """
    keras, port = np.asarray(keras, dtype=np.float64), np.asarray(port, dtype=np.float64)
    if len(keras) < 2 or len(port) < 2:
        raise ValueError(f"a Welch t needs 2 runs a side, got Keras {len(keras)} and port {len(port)}")
    var_k, var_p = (np.where(np.ptp(x, axis=0) == 0, 0.0, x.var(axis=0, ddof=1)) / len(x) for x in (keras, port))
    difference = port.mean(axis=0) - keras.mean(axis=0)
    standard_error = np.sqrt(var_k + var_p)
    both_zero = standard_error == 0
    safe = np.where(both_zero, 1.0, standard_error)
    t = np.where(both_zero, np.nan, difference / safe)
    # Welch-Satterthwaite degrees of freedom; a side with zero spread contributes nothing.
    denominator = np.where(var_k > 0, var_k**2 / (len(keras) - 1), 0) + np.where(var_p > 0, var_p**2 / (len(port) - 1), 0)
    dof = np.where(both_zero, np.nan, (var_k + var_p) ** 2 / np.where(both_zero, 1.0, denominator))
    p = np.where(both_zero, np.nan, 2 * stats.t.sf(np.abs(np.nan_to_num(t)), np.nan_to_num(dof, nan=1.0)))
    return {"difference": difference, "t": t, "p": p, "both_zero": both_zero}


def confusion_across_seeds(keras: Sequence[np.ndarray], port: Sequence[np.ndarray]) -> dict[str, Any]:
    """Mean row-normalised confusion per framework, its seed spread, port − Keras per cell as a Welch t,
    and per-class recall (the diagonal) with its spread on both sides."""
    k, p = np.stack([row_normalised(c) for c in keras]), np.stack([row_normalised(c) for c in port])
    result: dict[str, Any] = {"keras_n": len(k), "port_n": len(p),
                              "keras_mean": k.mean(axis=0), "port_mean": p.mean(axis=0),
                              "keras_recall": np.diagonal(k, axis1=1, axis2=2),
                              "port_recall": np.diagonal(p, axis1=1, axis2=2)}
    if len(k) >= 2 and len(p) >= 2:
        cells, recall = welch(k, p), welch(result["keras_recall"], result["port_recall"])
        tested = ~cells["both_zero"]
        result |= {"cells": cells, "recall_welch": recall,
                   "cells_tested": int(tested.sum()), "cells_both_spreads_zero": int(cells["both_zero"].sum()),
                   "cells_significant": int(np.sum(cells["p"][tested] < SIGNIFICANCE)),
                   "cells_expected_by_chance": SIGNIFICANCE * int(tested.sum()),
                   "largest_abs_t": float(np.nanmax(np.abs(cells["t"]))) if tested.any() else None}
    return result


@dataclass(frozen=True)
class Predicted:
    """One run's predicted classes on the test set, with what a pair table shows of it."""
    label: str
    framework: str
    seed: int
    predicted: np.ndarray
    accuracy: float


def pair_kind(a: Predicted, b: Predicted) -> str:
    return "same framework" if a.framework == b.framework else "across frameworks"


def agreement_pairs(runs: Sequence[Predicted]) -> list[dict[str, Any]]:
    """Every pair of runs: its kind, both accuracies, and the share of images given the same class."""
    pairs = []
    for a, b in itertools.combinations(sorted(runs, key=lambda r: (r.framework, r.seed)), 2):
        if a.predicted.shape != b.predicted.shape:
            raise ValueError(f"{a.label} and {b.label} predicted different numbers of images")
        pairs.append({"a": a.label, "b": b.label, "frameworks": f"{a.framework}-{b.framework}",
                      "kind": pair_kind(a, b), "accuracy_a": a.accuracy, "accuracy_b": b.accuracy,
                      "mean_accuracy": (a.accuracy + b.accuracy) / 2,
                      "agreement": float(np.mean(a.predicted == b.predicted))})
    return pairs


def agreement_reading(pairs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Do Keras-vs-port pairs agree as much as same-framework pairs do?

    The yardstick is the range of agreement over same-framework pairs (it needs two such pairs to be a
    range); the mean agreement of the cross pairs lies inside, below or above it. The mean accuracies
    of both kinds come along, since agreement grows with accuracy: the reading says whether they are
    alike.
    """
    same = [p for p in pairs if p["kind"] == "same framework"]
    cross = [p for p in pairs if p["kind"] == "across frameworks"]
    if not same or not cross:
        return None
    mean = lambda kind, key: float(np.mean([p[key] for p in kind]))  # noqa: E731
    low, high = min(p["agreement"] for p in same), max(p["agreement"] for p in same)
    cross_agreement = mean(cross, "agreement")
    position = None
    if len(same) >= 2:
        position = "below" if cross_agreement < low else "above" if cross_agreement > high else "inside"
    return {"same_framework_pairs": len(same), "cross_pairs": len(cross),
            "same_framework_range": [low, high], "same_framework_agreement": mean(same, "agreement"),
            "cross_agreement": cross_agreement, "agreement_difference": cross_agreement - mean(same, "agreement"),
            "same_framework_accuracy": mean(same, "mean_accuracy"), "cross_accuracy": mean(cross, "mean_accuracy"),
            "position": position}
