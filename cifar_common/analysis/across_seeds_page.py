"""The results page's across-seed section: every 31-epoch dropout run of the tutorial, per framework.

From each run's confusion.csv: the mean row-normalised confusion matrix per framework, port − Keras per
cell as a Welch t, and per-class recall with its seed spread. From the runs whose predictions are kept:
agreement for every pair, beside both accuracies, and the computed reading of Keras-vs-port pairs
against same-framework pairs. Numbers go to across-seeds.json; the page gets markdown lines.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cifar_common import markdown
from cifar_common.analysis import across_seeds
from cifar_common.analysis.bands import is_full_budget_tutorial
from cifar_common.data import CLASS_NAMES
from cifar_common.rundir.atomic import write_text
from cifar_common.rundir.folder import Run, read_confusion

JSON_FILE = "across-seeds.json"
FIGURE = "figures/confusion-across-seeds.png"
FRAMEWORKS = {"keras": "Keras", "lightning": "port"}


def dropout_runs(recorded: Sequence[Run], framework: str) -> list[Run]:
    return [run for run in recorded if run.metrics["framework"] == framework
            and run.metrics["variant"] == "dropout" and is_full_budget_tutorial(run)]


def predicted(run: Run) -> across_seeds.Predicted:
    return across_seeds.Predicted(label=run.path.name, framework=run.metrics["framework"],
                                  seed=int(run.metrics["seed"]), predicted=run.y_pred,
                                  accuracy=float(np.mean(run.y_pred == run.y_true)))


def measure(recorded: Sequence[Run]) -> dict[str, Any]:
    """The across-seed numbers, JSON-ready (nan written as null)."""
    keras, port = dropout_runs(recorded, "keras"), dropout_runs(recorded, "lightning")
    result: dict[str, Any] = {
        "keras_runs": [{"run": r.path.name, "seed": r.metrics["seed"]} for r in keras],
        "port_runs": [{"run": r.path.name, "seed": r.metrics["seed"]} for r in port]}
    if keras and port:
        result["confusion"] = across_seeds.confusion_across_seeds(
            [read_confusion(r.folder) for r in keras], [read_confusion(r.folder) for r in port])
    kept = [predicted(r) for r in (*keras, *port) if r.has_predictions]
    result["agreement_pairs"] = across_seeds.agreement_pairs(kept)
    result["agreement_reading"] = across_seeds.agreement_reading(result["agreement_pairs"])
    return json_ready(result)


def json_ready(value: Any) -> Any:
    """Arrays as lists, numpy scalars as Python numbers, nan as None (JSON has no nan)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def write(measured: dict[str, Any], out: Path) -> None:
    write_text(out / JSON_FILE, json.dumps(measured, indent=1, allow_nan=False) + "\n")


def seeds(runs: Sequence[dict]) -> str:
    return ", ".join(str(r["seed"]) for r in runs)


def mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def t_text(t: float | None) -> str:
    return "no spread" if t is None else f"{t:+.2f}"


def recall_lines(confusion: dict[str, Any]) -> list[str]:
    keras, port = np.array(confusion["keras_recall"]), np.array(confusion["port_recall"])
    tested = confusion.get("recall_welch")
    rows = [[name, mean_std(keras[:, i]), mean_std(port[:, i]), f"{port[:, i].mean() - keras[:, i].mean():+.3f}",
             t_text(tested["t"][i]) if tested else "needs 2 runs a side"]
            for i, name in enumerate(CLASS_NAMES)]
    return markdown.table(["class", "Keras recall (mean ± std over seeds)", "port recall", "port − Keras",
                           "Welch t"], rows)


def cell_lines(confusion: dict[str, Any]) -> list[str]:
    if "cells" not in confusion:
        return ["Per-cell Welch t needs 2 runs a side."]
    cells = confusion["cells"]
    significant = sorted(((abs(cells["t"][r][c]), r, c) for r in range(len(CLASS_NAMES)) for c in range(len(CLASS_NAMES))
                          if cells["p"][r][c] is not None and cells["p"][r][c] < across_seeds.SIGNIFICANCE),
                         reverse=True)
    lines = [f"Of the {len(CLASS_NAMES) ** 2} cells of the row-normalised matrix, {confusion['cells_both_spreads_zero']} "
             f"have no spread on either side (the same share in every run: no t); of the {confusion['cells_tested']} "
             f"tested, {confusion['cells_significant']} have p < {across_seeds.SIGNIFICANCE} where chance alone gives "
             f"about {confusion['cells_expected_by_chance']:.1f}; the largest |t| is "
             f"{confusion['largest_abs_t']:.2f}."]
    if significant:
        rows = [[CLASS_NAMES[r], CLASS_NAMES[c], f"{confusion['keras_mean'][r][c]:.4f}",
                 f"{confusion['port_mean'][r][c]:.4f}", f"{cells['difference'][r][c]:+.4f}", f"{cells['t'][r][c]:+.2f}",
                 f"{cells['p'][r][c]:.3g}"] for _, r, c in significant]
        lines += ["", *markdown.table(["truth", "predicted", "Keras mean share", "port mean share", "port − Keras",
                                       "Welch t", "p"], rows)]
    return lines


def agreement_lines(pairs: Sequence[dict], reading: dict[str, Any] | None) -> list[str]:
    if not pairs:
        return ["No two 31-epoch dropout runs with kept predictions yet."]
    rows = [[p["a"], p["b"], p["kind"], f"{p['accuracy_a']:.4f}", f"{p['accuracy_b']:.4f}",
             f"{100 * p['agreement']:.1f}%"] for p in pairs]
    lines = markdown.table(["run A", "run B", "pair", "accuracy A", "accuracy B", "agreement"], rows)
    return lines + ["", reading_text(reading)]


def reading_text(reading: dict[str, Any] | None) -> str:
    if reading is None:
        return "Reading: needs at least one same-framework pair and one Keras-vs-port pair."
    low, high = reading["same_framework_range"]
    text = (f"Reading: Keras-vs-port pairs agree on {100 * reading['cross_agreement']:.1f}% of the test images "
            f"(mean of {reading['cross_pairs']} pairs, mean accuracy {reading['cross_accuracy']:.4f}); same-framework "
            f"pairs on {100 * low:.1f}–{100 * high:.1f}% (mean {100 * reading['same_framework_agreement']:.1f}% over "
            f"{reading['same_framework_pairs']} pairs, mean accuracy {reading['same_framework_accuracy']:.4f}). ")
    if reading["position"] is None:
        return text + "One same-framework pair is not yet a range: no verdict."
    if reading["position"] == "inside":
        return text + "The Keras-vs-port agreement lies inside the same-framework range: the port disagrees with " \
                      "Keras no more than a second seed of either framework does."
    return text + (f"The Keras-vs-port agreement lies {reading['position']} the same-framework range "
                   f"({100 * reading['agreement_difference']:+.1f} points against its mean); compare the accuracies "
                   "before reading it as a difference between the frameworks, since agreement grows with accuracy.")


def page_lines(measured: dict[str, Any], figure: bool) -> list[str]:
    lines = ["## Across seeds: confusion matrices and agreement", "",
             f"31-epoch dropout runs: Keras n = {len(measured['keras_runs'])} (seeds {seeds(measured['keras_runs'])}), "
             f"port n = {len(measured['port_runs'])} (seeds {seeds(measured['port_runs'])}). Each run's confusion "
             "matrix is divided by its row totals; per cell, port − Keras over sqrt(s_K²/n_K + s_P²/n_P) is a "
             f"Welch t. Numbers: [{JSON_FILE}]({JSON_FILE}).", ""]
    if "confusion" in measured:
        lines += ["### Per-class recall", "", *recall_lines(measured["confusion"]), "",
                  "### Per cell", "", *cell_lines(measured["confusion"]), ""]
        if figure:
            lines += [f"![Mean row-normalised confusion per framework and the Welch t per cell]({FIGURE})", ""]
    lines += ["### Agreement, every pair of runs with kept predictions", "",
              *agreement_lines(measured["agreement_pairs"], measured["agreement_reading"]), ""]
    return lines
