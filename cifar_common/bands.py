"""Accuracy bands measured from real runs, and the checks a port's run must pass against them.

    python -m cifar_common.bands runs/bands-e2/* runs/full/* --out reports/bands.json

Runs are grouped by (framework, variant, epochs); each group records the mean, standard deviation
(n - 1 in the denominator) and every value of test accuracy and final val_accuracy, with the run
folders, seeds and wall times. The file is merged: groups not in this call's runs are kept. A
markdown table of all groups is written next to it (bands.md).

A run passes a band when its value lies within mean ± max(2 standard deviations, 1.5 points).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cifar_common import markdown
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.runs import Run, read_run, write_text

BAND_FLOOR = 0.015  # the narrowest half-width: 1.5 accuracy points
METRICS = ("test_accuracy", "final_val_accuracy")
DEFAULT_BANDS = Path(__file__).resolve().parent.parent / "reports" / "bands.json"


@dataclass(frozen=True)
class Band:
    mean: float
    std: float | None  # None when n == 1
    n: int

    @property
    def half_width(self) -> float:
        return max(2 * (self.std or 0.0), BAND_FLOOR)

    def contains(self, value: float) -> bool:
        return abs(value - self.mean) <= self.half_width

    def describe(self) -> str:
        return f"{self.mean:.4f} ± {self.half_width:.4f} (n={self.n})"


def summary(values: Sequence[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": list(values)}


def group_key(run: Run) -> tuple[str, str, int]:
    m = run.metrics
    return m["framework"], m["variant"], int(m["epochs"])


def measure(runs: Sequence[Run]) -> list[dict]:
    groups: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    today = datetime.date.today().isoformat()
    return [{
        "framework": framework, "variant": variant, "epochs": epochs, "n": len(members),
        **{metric: summary([float(run.metrics[metric]) for run in members]) for metric in METRICS},
        "fit_seconds": summary([float(run.metrics["fit_seconds"]) for run in members]),
        "seeds": [run.metrics["seed"] for run in members],
        "runs": [run.path.name for run in members],
        "train_images": members[0].metrics["train_images"],
        "date": today, "machine": f"{platform.machine()} {platform.processor()}".strip(),
    } for (framework, variant, epochs), members in sorted(groups.items())]


def load(path: Path = DEFAULT_BANDS) -> list[dict]:
    if not path.is_file():
        raise UserError(f"no bands file at {path} (make it with python -m cifar_common.bands RUN_DIR ...)")
    return json.loads(path.read_text())["groups"]


def band(groups: Sequence[dict], framework: str, variant: str, epochs: int, metric: str) -> Band:
    for group in groups:
        if (group["framework"], group["variant"], group["epochs"]) == (framework, variant, epochs):
            return Band(group[metric]["mean"], group[metric]["std"], group["n"])
    raise UserError(f"no {framework} {variant} band at {epochs} epochs in the bands file")


def merge(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    key = lambda g: (g["framework"], g["variant"], g["epochs"])  # noqa: E731
    merged = {key(g): g for g in old}
    merged.update({key(g): g for g in new})
    return [merged[k] for k in sorted(merged)]


def markdown_table(groups: Sequence[dict]) -> str:
    def cell(stats: dict) -> str:
        std = "n/a" if stats["std"] is None else f"{stats['std']:.4f}"
        return f"{stats['mean']:.4f} ± {std}"

    header = ["framework", "variant", "epochs", "n", "test accuracy (mean ± std)",
              "final val_accuracy (mean ± std)", "fit wall time (mean)", "seeds", "test accuracy of each run"]
    rows = [[g["framework"], g["variant"], str(g["epochs"]), str(g["n"]), cell(g["test_accuracy"]),
             cell(g["final_val_accuracy"]), f"{g['fit_seconds']['mean'] / 60:.1f} min",
             ", ".join(map(str, g["seeds"])), ", ".join(f"{v:.4f}" for v in g["test_accuracy"]["values"])]
            for g in groups]
    lines = markdown.table(header, rows)
    return "\n".join(lines) + "\n"


def overfitting_signature(val_loss: np.ndarray, loss: np.ndarray, min_rise: float = 0.05) -> bool:
    """The baseline's signature: val_loss rises (by min_rise at least) after its minimum, which is not
    the last epoch, while the training loss keeps falling past that epoch."""
    best = int(np.argmin(val_loss))
    return best < len(val_loss) - 1 and val_loss[-1] - val_loss[best] >= min_rise and loss[-1] < loss[best]


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar_common.bands", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--out", type=Path, default=DEFAULT_BANDS)
    args = parser.parse_args(argv)
    groups = measure([read_run(path) for path in args.run_dirs])
    merged = merge(load(args.out) if args.out.is_file() else [], groups)
    write_text(args.out, json.dumps({"rule": "mean ± max(2 std, 0.015)", "groups": merged}, indent=2) + "\n")
    write_text(args.out.with_suffix(".md"), markdown_table(merged))
    print(markdown_table(merged), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
