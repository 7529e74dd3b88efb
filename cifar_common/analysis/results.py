"""The results page and everything behind it, rebuilt from the recorded runs in reports/runs/ alone
(`python -m cifar_common.report`).

Writes bands.json and bands.md (every group of runs, the verdicts with their Welch intervals),
one comparison-* folder per Keras-vs-port pair of the same seed and one Keras-vs-Keras yardstick
(only runs whose predictions are kept), the overlaid curves per variant, the overfitting figure and
the results page README.md. Figures are regenerated; the JSON and markdown are reproducible.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cifar_common import markdown
from cifar_common.analysis import across_seeds_page, bands, results_plots
from cifar_common.analysis.comparison import compare_runs
from cifar_common.analysis.comparison_page import write_comparison
from cifar_common.analysis.stats import LATE_EPOCHS
from cifar_common.errors import UserError
from cifar_common.paths import REPORTS_DIR
from cifar_common.rundir.atomic import write_text
from cifar_common.rundir.folder import LAUNCH_FILE, Run, read_launch, read_run

TAKEN_FILES = ("config.yaml", "launch.json", "history.csv", "metrics.json", "predictions.npz", "confusion.csv")
PAGE = "README.md"


def take_in(sources: Sequence[Path], recorded_dir: Path) -> list[str]:
    """Copy every finished run (one with metrics.json) under `sources` that is not recorded yet."""
    taken = []
    for source in sources:
        for metrics_file in sorted(source.glob("*/metrics.json")):
            run_dir, target = metrics_file.parent, recorded_dir / metrics_file.parent.name
            if target.exists() or trained_on_a_subset(run_dir):
                continue
            target.mkdir(parents=True)
            for name in TAKEN_FILES:
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, target / name)
            taken.append(run_dir.name)
    return taken


def trained_on_a_subset(run_dir: Path) -> bool:
    """Quick --subset runs never enter the bands."""
    return (run_dir / LAUNCH_FILE).is_file() and read_launch(run_dir).get("subset") is not None


def read_recorded(reports_dir: Path) -> list[Run]:
    """Every finished run in `reports_dir`/runs, named relative to `reports_dir`."""
    recorded_dir = reports_dir / "runs"
    if not recorded_dir.is_dir():
        raise UserError(f"no recorded runs at {recorded_dir}: the results live in the repository's reports/ folder")
    found = []
    for run_dir in sorted(recorded_dir.iterdir()):
        if not (run_dir / "metrics.json").is_file():
            continue
        found.append(read_run(run_dir, shown_as=Path("runs") / run_dir.name, complete=False))
    return found


def comparison_pairs(recorded: Sequence[Run]) -> dict[str, tuple[Run, Run]]:
    """Keras vs port on the same seed, per group; and the two lowest-seed Keras dropout runs at 31 epochs."""
    with_predictions = [r for r in recorded if r.has_predictions]
    by_key: dict[tuple, Run] = {}
    for run in with_predictions:
        by_key.setdefault((*bands.group_key(run), run.metrics["seed"]), run)
    pairs = {}
    for (framework, architecture, variant, epochs, seed), keras_run in sorted(by_key.items()):
        port_run = by_key.get(("lightning", architecture, variant, epochs, seed))
        if framework == "keras" and port_run is not None:
            prefix = "" if architecture == bands.TUTORIAL else f"{architecture}-"
            pairs[f"comparison-{prefix}{variant}-e{epochs}-seed{seed}"] = (keras_run, port_run)
    keras_dropout = sorted((r for r in with_predictions
                            if bands.group_key(r) == ("keras", bands.TUTORIAL, "dropout", bands.FULL_EPOCHS)),
                           key=lambda r: r.metrics["seed"])
    if len(keras_dropout) >= 2:
        pairs["comparison-keras-seeds"] = (keras_dropout[0], keras_dropout[1])
    return pairs


def build(reports_dir: Path = REPORTS_DIR, out: Path | None = None, figures: bool = True) -> dict[str, Any]:
    """Rebuild the results from `reports_dir`/runs into `out` (default: `reports_dir` itself)."""
    out = out or reports_dir
    recorded = read_recorded(reports_dir)
    groups = bands.measure([(run, run.has_predictions) for run in recorded])
    verdicts = {"dropout": bands.band_verdicts(groups, "dropout"), "overfitting": overfitting_verdicts(recorded)}
    out.mkdir(parents=True, exist_ok=True)
    first_epoch = bands.first_epoch_groups(recorded)
    write_text(out / "bands.json", json.dumps({"rule": bands.BAND_RULE, "groups": groups, "first_epoch": first_epoch,
                                                   "verdicts": verdicts}, indent=2, allow_nan=False) + "\n")
    write_text(out / "bands.md", "\n".join(bands.markdown_table(groups)) + "\n")
    for old in out.glob("comparison-*"):
        shutil.rmtree(old)
    comparisons = {}
    for name, (a, b) in comparison_pairs(recorded).items():
        result = compare_runs(a, b)
        (out / name).mkdir()
        write_comparison(result, a, b, out / name, figures=figures)
        comparisons[name] = result
    seeds = across_seeds_page.measure(recorded)
    across_seeds_page.write(seeds, out)
    if figures:
        results_plots.plot_variant_curves(recorded, out / "figures")
        results_plots.plot_overfitting(recorded, out / "figures")
        if "confusion" in seeds:
            results_plots.plot_confusion_across_seeds(seeds["confusion"], out / across_seeds_page.FIGURE)
    write_text(out / PAGE, results_page(groups, verdicts, comparisons, seeds))
    return {"groups": groups, "verdicts": verdicts, "comparisons": comparisons, "across_seeds": seeds}


def overfitting_verdicts(recorded: Sequence[Run]) -> list[dict[str, Any]]:
    return [{"run": run.path.name, "framework": run.metrics["framework"], "variant": run.metrics["variant"],
             "signature": bands.overfitting_signature(run.history["val_loss"], run.history["loss"])}
            for run in recorded if bands.is_full_budget_tutorial(run)]


VERDICT_NAMES = {"test_accuracy": "test accuracy", "final_val_accuracy": "final val_accuracy",
                 "late_val_accuracy": f"val_accuracy, mean of the last {LATE_EPOCHS} epochs"}


def verdict_lines(verdicts: dict[str, Any]) -> list[str]:
    dropout = verdicts["dropout"]
    lines = [f"Dropout, {dropout['epochs']} epochs: Keras n = {dropout['keras_n']}, port n = {dropout['port_n']}. "
             f"Band rule: {bands.BAND_RULE} of the Keras runs; the port's mean must lie inside.", ""]
    rows = []
    for metric, v in dropout["metrics"].items():
        low, high = v["keras_band"]
        inside = {True: "inside", False: "**outside**", None: "(no band verdict)"}[v["inside"]]
        rows.append([VERDICT_NAMES[metric], f"[{low:.4f}, {high:.4f}]", f"{v['port_mean']:.4f}", inside,
                     markdown.fmt_welch(v["welch"])])
    lines += markdown.table(["metric", "Keras band", "port mean", "verdict",
                             "port − Keras, 95% Welch interval"], rows)
    baseline = [v for v in verdicts["overfitting"] if v["variant"] == "baseline"]
    dropout_runs = [v for v in verdicts["overfitting"] if v["variant"] == "dropout"]
    shown = lambda vs: ", ".join(f"{v['framework']} {v['run']}" for v in vs if v["signature"]) or "none"  # noqa: E731
    lines += ["", f"Overfitting signature (last-{LATE_EPOCHS}-epoch mean val_loss ≥ 1.25 × its earlier "
              f"minimum while the training loss keeps falling): baseline runs {len(baseline)}, showing it: "
              f"{shown(baseline)}; dropout runs {len(dropout_runs)}, showing it: {shown(dropout_runs)}."]
    return lines


def comparison_rows(comparisons: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, c in comparisons.items():
        mean_abs_recall_change = np.nanmean(np.abs(np.array(c["recall_change"], dtype=float)))
        rows.append([f"[{name}]({name}/comparison.md)", c["label_a"], c["label_b"], f"{c['accuracy_a']:.4f}",
                     f"{c['accuracy_b']:.4f}", f"{100 * c['agreement']:.1f}%",
                     f"b={c['mcnemar_b']} c={c['mcnemar_c']} p={c['mcnemar_p']:.3g}",
                     f"{mean_abs_recall_change:.4f}"])
    return rows


def runs_table(groups: Sequence[dict]) -> list[str]:
    rows = [[f"[{r['run']}](runs/{r['run']})" + ("" if r["predictions_kept"] else " †"), g["framework"], g["variant"],
             str(g["epochs"]), str(r["seed"]), f"{r['test_accuracy']:.4f}", f"{r['final_val_accuracy']:.4f}",
             f"{r['fit_minutes']:.1f} min" + (f" (epochs {r['resumed_after_epoch'] + 1}–{g['epochs']}, resumed)"
                                              if r["resumed_after_epoch"] else ""), r["date"], r["machine"]]
            for g in groups for r in g["runs"]]
    return markdown.table(["run", "framework", "variant", "epochs", "seed", "test accuracy", "final val_accuracy",
                           "fit wall time", "date", "machine"], rows)


def results_page(groups: Sequence[dict], verdicts: dict[str, Any], comparisons: dict[str, dict],
                 seeds: dict[str, Any]) -> str:
    lines = ["# Results: the port against the Keras reference on CIFAR-10", "",
             "Made by `make report` (`python -m cifar_common.report`) from the recorded runs in [runs/](runs/) "
             "alone; do not edit by hand. Each run's date and machine are its own (from its metrics.json; "
             "runs recorded before provenance was kept show the start date in their folder name).", "",
             "## Accuracy by framework, variant and training length", ""]
    lines += bands.markdown_table(groups)
    lines += ["", "## Every recorded run", ""] + runs_table(groups)
    lines += ["", "† predictions not kept (recorded before predictions.npz was committed): the run counts in "
              "its band but cannot be compared image by image.", "",
              "## Verdicts", ""] + verdict_lines(verdicts)
    lines += ["", "## Keras against the port, beside Keras against Keras", "",
              "Agreement and McNemar's exact test on the 10,000 test images, one pair at a time; a Keras-vs-port "
              "pair is read against pairs of the same framework at the same accuracy in the next section.", ""]
    lines += (markdown.table(["comparison", "A", "B", "accuracy A", "accuracy B", "agreement", "McNemar",
                              "mean |recall change|"], comparison_rows(comparisons))
              if comparisons else ["No pair of recorded runs with kept predictions yet."])
    lines += ["", "Comparisons of earlier runs whose predictions were not kept are in [archive/](archive/), "
              "not reproducible.", ""]
    lines += across_seeds_page.page_lines(seeds, figure="confusion" in seeds)
    lines += ["## Figures", "",
              "![val_accuracy and val_loss of every 31-epoch run, per variant](figures/curves.png)", "",
              "![Baseline against dropout: training and validation loss, both frameworks](figures/overfitting.png)",
              ""]
    return "\n".join(lines)
