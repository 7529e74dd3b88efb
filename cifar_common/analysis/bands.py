"""Accuracy bands measured from recorded runs, the verdicts on the port, and the overfitting signature.

Runs are grouped by (framework, architecture, variant, epochs); each group records the mean,
standard deviation (n - 1 in the denominator) and every run's values, seed, date and machine.
A value passes a band when it lies within mean ± max(2 standard deviations, 1.5 points). Beside
each verdict the difference of the means (port − Keras) comes with its 95% Welch interval, so a
reader sees how large a gap the recorded runs can still hide. `python -m cifar_common.report`
writes reports/bands.json and reports/bands.md from reports/runs/.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from cifar_common import markdown
from cifar_common.analysis.stats import LATE_EPOCHS, late_val_accuracy
from cifar_common.errors import UserError
from cifar_common.paths import REPORTS_DIR
from cifar_common.rundir.folder import Run

BAND_FLOOR = 0.015  # the narrowest half-width: 1.5 accuracy points
BAND_RULE = "mean ± max(2 std, 0.015)"
METRICS = ("test_accuracy", "final_val_accuracy")
DEFAULT_BANDS = REPORTS_DIR / "bands.json"
TUTORIAL = "tutorial"  # runs recorded before architectures were named trained the tutorial's network
FULL_EPOCHS = 31
FULL_TRAIN_IMAGES = 35000  # Keras's 70% of the 50,000 training images


@dataclass(frozen=True)
class Band:
    mean: float
    std: float | None  # None when n == 1
    n: int

    @property
    def half_width(self) -> float:
        return max(2 * (self.std or 0.0), BAND_FLOOR)

    def contains(self, value: float) -> bool:
        return bool(abs(value - self.mean) <= self.half_width)  # False for nan

    def describe(self) -> str:
        return f"{self.mean:.4f} ± {self.half_width:.4f} (n={self.n})"


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, std (n - 1; None for one value) and the values; the mean is None when there are none."""
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "values": list(values)}


def architecture_name(metrics: dict[str, Any]) -> str:
    return (metrics.get("architecture") or {}).get("name", TUTORIAL)


def group_key(run: Run) -> tuple[str, str, str, int]:
    m = run.metrics
    return m["framework"], architecture_name(m), m["variant"], int(m["epochs"])


def is_full_budget_tutorial(run: Run) -> bool:
    """A 31-epoch run of the tutorial's network: the runs the verdicts and the report's figures use."""
    return int(run.metrics["epochs"]) == FULL_EPOCHS and architecture_name(run.metrics) == TUTORIAL


def late_mean(run: Run) -> float:
    return late_val_accuracy(run.history)["mean"]


def finished_on(run: Run) -> str:
    """The run's own date: recorded at the end of the run, else the start time in its folder name."""
    finished = (run.metrics.get("provenance") or {}).get("finished_at")
    if finished:
        return finished[:10]
    stamp = run.path.name.split("-")[-2]  # <framework>-<variant>-YYYYMMDD-HHMMSS
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} (started)"


def resumed_after(run: Run) -> int:
    return int(run.metrics.get("resumed_after_epoch") or 0)


def run_entry(run: Run, predictions_kept: bool) -> dict[str, Any]:
    provenance = run.metrics.get("provenance") or {}
    return {
        "run": run.path.name, "seed": run.metrics["seed"],
        **{metric: float(run.metrics[metric]) for metric in METRICS},
        "late_val_accuracy": late_mean(run),
        "fit_minutes": float(run.metrics["fit_seconds"]) / 60,
        "resumed_after_epoch": resumed_after(run),  # fit_minutes counts only the epochs after it
        "date": finished_on(run),
        "machine": (f"{provenance['cpu']}, {provenance['cpu_count']} cores, {provenance['threads']} threads"
                    if provenance else "not recorded"),
        "predictions_kept": predictions_kept,
        "data_order": run.data_order,
    }


def measure(recorded: Sequence[tuple[Run, bool]]) -> list[dict[str, Any]]:
    """One group per (framework, architecture, variant, epochs), from (run, predictions kept) pairs."""
    groups: dict[tuple[str, str, str, int], list[tuple[Run, bool]]] = {}
    for run, kept in recorded:
        groups.setdefault(group_key(run), []).append((run, kept))
    return [{
        "framework": framework, "architecture": architecture, "variant": variant, "epochs": epochs,
        "n": len(members),
        **{metric: summary([float(run.metrics[metric]) for run, _ in members]) for metric in METRICS},
        "late_val_accuracy": summary([late_mean(run) for run, _ in members]),
        # Wall time of whole fits only: a resumed run's fit_seconds counts only its last epochs.
        "fit_seconds": summary([float(run.metrics["fit_seconds"]) for run, _ in members if not resumed_after(run)]),
        "seeds": [run.metrics["seed"] for run, _ in members],
        "train_images": members[0][0].metrics["train_images"],
        "runs": [run_entry(run, kept) for run, kept in members],
    } for (framework, architecture, variant, epochs), members in sorted(groups.items())]


FIRST_EPOCH_METRICS = ("loss", "accuracy")


def first_epoch_groups(recorded: Sequence[Run]) -> list[dict[str, Any]]:
    """The first epoch's training loss and accuracy per (framework, architecture, variant), one run per seed.

    Runs of one seed share their first epoch whatever their length (same seed, same steps), so each
    seed counts once. These running means over an epoch of 137 steps vary far less from seed to
    seed than a validation accuracy two epochs in, so one epoch of the port tests as much, for less.
    """
    groups: dict[tuple[str, str, str], dict[int, Run]] = {}
    for run in recorded:
        framework, architecture, variant, _ = group_key(run)
        if run.metrics["train_images"] == FULL_TRAIN_IMAGES:
            groups.setdefault((framework, architecture, variant), {}).setdefault(run.metrics["seed"], run)
    return [{"framework": framework, "architecture": architecture, "variant": variant, "n": len(by_seed),
             "seeds": sorted(by_seed),
             **{metric: summary([float(by_seed[seed].history[metric][0]) for seed in sorted(by_seed)])
                for metric in FIRST_EPOCH_METRICS}}
            for (framework, architecture, variant), by_seed in sorted(groups.items())]


def first_epoch_band(groups: Sequence[dict], framework: str, variant: str, metric: str,
                     architecture: str = TUTORIAL) -> Band:
    for group in groups:
        if (group["framework"], group["architecture"], group["variant"]) == (framework, architecture, variant):
            return Band(group[metric]["mean"], group[metric]["std"], group["n"])
    raise UserError(f"no {framework} {architecture} {variant} first-epoch band in the bands file")


def find_group(groups: Sequence[dict], framework: str, variant: str, epochs: int,
               architecture: str = TUTORIAL) -> dict | None:
    for group in groups:
        if (group["framework"], group.get("architecture", TUTORIAL), group["variant"], group["epochs"]) == (
                framework, architecture, variant, epochs):
            return group
    return None


def band(groups: Sequence[dict], framework: str, variant: str, epochs: int, metric: str,
         architecture: str = TUTORIAL) -> Band:
    group = find_group(groups, framework, variant, epochs, architecture)
    if group is None:
        raise UserError(f"no {framework} {architecture} {variant} band at {epochs} epochs in the bands file")
    return Band(group[metric]["mean"], group[metric]["std"], group["n"])


def load(path: Path = DEFAULT_BANDS, section: str = "groups") -> list[dict]:
    """A section of the bands file: `groups` (whole runs) or `first_epoch`."""
    if not path.is_file():
        raise UserError(f"no bands file at {path}: it lives in the repository's reports/ folder "
                        f"(rebuild it there with `make report`)")
    return json.loads(path.read_text())[section]


def welch_difference(port: Sequence[float], keras: Sequence[float], level: float = 0.95) -> dict[str, Any] | None:
    """port mean − Keras mean with its Welch interval (None with fewer than 2 runs a side)."""
    if len(port) < 2 or len(keras) < 2:
        return None
    test = stats.ttest_ind(port, keras, equal_var=False)
    interval = test.confidence_interval(level)
    return {"difference": statistics.fmean(port) - statistics.fmean(keras),
            "interval": [float(interval.low), float(interval.high)], "level": level, "p": float(test.pvalue)}


def band_verdicts(groups: Sequence[dict], variant: str = "dropout", epochs: int = FULL_EPOCHS) -> dict[str, Any]:
    """The port's mean against the Keras band, per metric, with the Welch interval of the difference."""
    keras, port = (find_group(groups, framework, variant, epochs) for framework in ("keras", "lightning"))
    if keras is None or port is None:
        return {"variant": variant, "epochs": epochs, "keras_n": keras and keras["n"], "port_n": port and port["n"],
                "metrics": {}}
    verdicts = {}
    for metric in (*METRICS, "late_val_accuracy"):
        keras_band = Band(keras[metric]["mean"], keras[metric]["std"], keras["n"])
        port_mean = port[metric]["mean"]
        verdicts[metric] = {
            "keras_band": [keras_band.mean - keras_band.half_width, keras_band.mean + keras_band.half_width],
            "port_mean": port_mean,
            # The band verdict is on the two metrics the issue names; the late mean only gets the interval.
            "inside": keras_band.contains(port_mean) if metric in METRICS else None,
            "welch": welch_difference(port[metric]["values"], keras[metric]["values"]),
        }
    orders = {side: sorted({r["data_order"] for r in group["runs"]}) for side, group in (("keras", keras), ("port", port))}
    return {"variant": variant, "epochs": epochs, "keras_n": keras["n"], "port_n": port["n"], "metrics": verdicts,
            "keras_data_orders": orders["keras"], "port_data_orders": orders["port"]}


def overfitting_signature(val_loss: np.ndarray, loss: np.ndarray, min_rise: float = 0.25) -> bool:
    """Overfitting: the mean val_loss of the last epochs lies `min_rise` (relative) above its minimum,
    which came before them, while the training loss kept falling past that minimum.

    A mean over the last epochs, not the last epoch: in the recorded 31-epoch dropout runs single
    epochs spike 15% above the minimum (port seed 42: 0.709 against 0.618; Keras seed 2: 0.731
    against 0.636) while their last-5 means stay within 6% of it.
    """
    val_loss, loss = np.asarray(val_loss, dtype=float), np.asarray(loss, dtype=float)
    if len(val_loss) <= LATE_EPOCHS or not (np.all(np.isfinite(val_loss)) and np.all(np.isfinite(loss))):
        return False
    best = int(np.argmin(val_loss))
    late = float(np.mean(val_loss[-LATE_EPOCHS:]))
    return bool(best < len(val_loss) - LATE_EPOCHS and late >= (1 + min_rise) * val_loss[best]
                and loss[-1] < loss[best])


def markdown_table(groups: Sequence[dict]) -> list[str]:
    header = ["framework", "architecture", "variant", "epochs", "n", "test accuracy (mean ± std)",
              "final val_accuracy (mean ± std)", "fit wall time (mean)", "seeds", "test accuracy of each run"]
    rows = [[g["framework"], g.get("architecture", TUTORIAL), g["variant"], str(g["epochs"]), str(g["n"]),
             markdown.fmt_std(g["test_accuracy"]), markdown.fmt_std(g["final_val_accuracy"]), markdown.fmt_minutes(g["fit_seconds"]["mean"]),
             ", ".join(str(r["seed"]) for r in g["runs"]), ", ".join(f"{r['test_accuracy']:.4f}" for r in g["runs"])]
            for g in groups]
    return markdown.table(header, rows)
