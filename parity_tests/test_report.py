"""The results in reports/ are rebuilt from reports/runs/ alone, and the full-budget verdicts on them.

The default tests build reports from run folders of known values and rebuild the committed
reports into a temporary folder, which must give the committed JSON and markdown byte for byte
(figures are regenerated, not compared). The full-budget verdicts (`-m full_budget`) read the
recorded 31-epoch runs: the port's mean against the Keras band, and the overfitting signature.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cifar_common import report
from cifar_common.analysis import bands
from cifar_common.analysis.stats import confusion_from_predictions
from cifar_common.paths import REPORTS_DIR
from cifar_common.rundir.folder import (write_config, write_confusion, write_history, write_launch, write_metrics,
                                        write_predictions)

REPORTS = REPORTS_DIR


def write_run(parent: Path, name: str, framework: str, seed: int, test_accuracy: float, epochs: int = 6,
              subset: int | None = None, predictions: bool = True) -> Path:
    """A finished run folder with known values (10 test images)."""
    run_dir = parent / name
    run_dir.mkdir(parents=True)
    write_config(run_dir, {"training": {"dropout": True, "epochs": epochs, "seed": seed}})
    write_launch(run_dir, framework, subset)
    val = np.linspace(0.3, 0.3 + 0.01 * seed, epochs)
    write_history(run_dir, [{"epoch": e + 1, "loss": 2.0 - 0.1 * e, "accuracy": 0.3, "val_loss": 1.9,
                                  "val_accuracy": float(val[e])} for e in range(epochs)])
    write_metrics(run_dir, {"framework": framework, "variant": "dropout", "epochs": epochs, "seed": seed,
                                 "test_accuracy": test_accuracy, "final_val_accuracy": float(val[-1]),
                                 "fit_seconds": 60.0 * seed, "train_images": 35000,
                                 "provenance": {"finished_at": f"2026-11-0{seed}T10:00:00+00:00", "cpu": "AMD EPYC",
                                                "cpu_count": 2, "threads": 2}})
    labels = np.arange(10)
    predicted = np.where(labels < round(10 * test_accuracy), labels, (labels + 1) % 10)
    if predictions:
        write_predictions(run_dir, labels, np.eye(10, dtype=np.float32)[predicted])
    write_confusion(run_dir, confusion_from_predictions(labels, predicted, 10))
    return run_dir


def test_report_groups_runs_with_their_own_dates_and_pairs_them_by_seed(tmp_path):
    made = tmp_path / "made"
    for seed, accuracy in ((1, 0.4), (2, 0.6), (3, 0.5)):
        write_run(made, f"keras-dropout-2026110{seed}-100000", "keras", seed, accuracy)
    write_run(made, "lightning-dropout-20261101-100000", "lightning", 1, 0.5)
    write_run(made, "lightning-dropout-20261102-100000", "lightning", 2, 0.7, predictions=False)
    write_run(made, "lightning-dropout-20261109-100000", "lightning", 9, 0.9, subset=128)  # never taken in
    (made / "lightning-dropout-20261108-100000").mkdir()  # unfinished: no metrics.json
    reports_dir = tmp_path / "reports"
    taken = report.take_in([made], reports_dir / "runs")
    assert len(taken) == 5 and report.take_in([made], reports_dir / "runs") == []
    built = report.build(reports_dir, figures=False)
    keras, port = built["groups"]
    assert (keras["framework"], keras["n"], keras["seeds"]) == ("keras", 3, [1, 2, 3])
    assert keras["test_accuracy"]["mean"] == pytest.approx(0.5) and keras["test_accuracy"]["std"] == pytest.approx(0.1)
    assert [r["date"] for r in keras["runs"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [r["predictions_kept"] for r in port["runs"]] == [True, False]
    # Same seed, both with predictions: seed 1 only. The yardstick needs 31-epoch Keras runs.
    assert list(built["comparisons"]) == ["comparison-dropout-e6-seed1"]
    comparison = built["comparisons"]["comparison-dropout-e6-seed1"]
    assert (comparison["accuracy_a"], comparison["accuracy_b"]) == (0.4, 0.5)
    assert comparison["path_a"] == "runs/keras-dropout-20261101-100000"  # relative: the page links it
    page = (reports_dir / "README.md").read_text()
    assert "[comparison-dropout-e6-seed1](comparison-dropout-e6-seed1/comparison.md)" in page
    assert "[lightning-dropout-20261102-100000](runs/lightning-dropout-20261102-100000) †" in page


def test_committed_reports_are_rebuilt_from_the_recorded_runs_alone(tmp_path):
    built = report.build(REPORTS, tmp_path, figures=False)
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".json", ".md"))
    committed = sorted(p.relative_to(REPORTS) for p in REPORTS.glob("comparison-*/*") if p.suffix in (".json", ".md"))
    assert rebuilt == sorted([Path("bands.json"), Path("bands.md"), Path("README.md"), Path("across-seeds.json"),
                              *committed])
    for path in rebuilt:
        assert (tmp_path / path).read_text() == (REPORTS / path).read_text(), f"reports/{path} is stale: make report"
    assert built["groups"], "no recorded runs"


def test_across_seeds_section_reads_confusions_and_computes_the_agreement_reading(tmp_path):
    """Two 31-epoch runs a side (10 test images, one per class; run i right on the first 10·accuracy):
    agreement of two runs is 1 − |accuracy difference|, so the pairs and the reading are known."""
    made = tmp_path / "made"
    accuracies = {("keras", 1): 0.6, ("keras", 2): 0.8, ("lightning", 1): 0.7, ("lightning", 2): 0.9}
    for (framework, seed), accuracy in accuracies.items():
        write_run(made, f"{framework}-dropout-2026110{seed}-100000", framework, seed, accuracy, epochs=31)
    reports_dir = tmp_path / "reports"
    report.take_in([made], reports_dir / "runs")
    built = report.build(reports_dir, figures=False)
    seeds = built["across_seeds"]
    # Written without data_order: each framework's default, and the verdict names the orders it compares.
    verdict = built["verdicts"]["dropout"]
    assert (verdict["keras_data_orders"], verdict["port_data_orders"]) == (["fixed"], ["reshuffle"])
    confusion = seeds["confusion"]
    assert (confusion["keras_n"], confusion["port_n"]) == (2, 2)
    assert confusion["keras_recall"] == [[1] * 6 + [0] * 4, [1] * 8 + [0] * 2]
    # Classes 0-5 are right in every run and 9 wrong in every run: no spread on either side in their row cells.
    assert confusion["cells"]["t"][0][0] is None and confusion["cells_both_spreads_zero"] == 10 * 10 - 3 * 2
    agreement = {(p["a"][:5], p["b"][:5], p["accuracy_a"], p["accuracy_b"]): p["agreement"]
                 for p in seeds["agreement_pairs"]}
    assert all(a == pytest.approx(1 - abs(acc_a - acc_b)) for (_, _, acc_a, acc_b), a in agreement.items())
    reading = seeds["agreement_reading"]
    assert reading["same_framework_range"] == pytest.approx([0.8, 0.8])
    assert reading["cross_agreement"] == pytest.approx(0.85) and reading["position"] == "above"
    page = (reports_dir / "README.md").read_text()
    assert "## Across seeds" in page and "lies above the same-framework range" in page
    assert "Data orders compared: Keras fixed, port reshuffle" in page
    assert json.loads((reports_dir / "across-seeds.json").read_text()) == seeds


def test_across_seeds_recall_on_the_committed_runs_matches_their_confusion_files(tmp_path):
    """Per-class recall as the section reports it, against the diagonal of each recorded confusion.csv."""
    seeds = report.build(REPORTS, tmp_path, figures=False)["across_seeds"]
    for side, framework in (("keras_runs", "keras"), ("port_runs", "lightning")):
        assert seeds[side] and all(r["run"].startswith(framework) for r in seeds[side])
        recall = [np.diag(c) / c.sum(axis=1) for c in
                  (np.loadtxt(REPORTS / "runs" / r["run"] / "confusion.csv", delimiter=",") for r in seeds[side])]
        key = "keras_recall" if framework == "keras" else "port_recall"
        np.testing.assert_allclose(seeds["confusion"][key], recall, rtol=0, atol=1e-12)


def full_budget_verdicts(tmp_path: Path) -> dict:
    return report.build(REPORTS, tmp_path, figures=False)["verdicts"]


@pytest.mark.full_budget
def test_full_budget_port_mean_lies_in_the_keras_band(tmp_path):
    """The mean of the port's 31-epoch dropout runs lies in the Keras band (>= 3 seeds a side), per metric.

    The mean, not each run: a run of an exact port still falls outside a 2-std band now and then
    (5% of runs with a known std; 22% with a std from 3 runs, a t with 2 degrees of freedom).
    """
    verdicts = full_budget_verdicts(tmp_path)["dropout"]
    assert verdicts["keras_n"] and verdicts["keras_n"] >= 3, f"Keras has {verdicts['keras_n']} dropout runs, needs 3"
    assert verdicts["port_n"] and verdicts["port_n"] >= 3, f"the port has {verdicts['port_n']} dropout runs, needs 3"
    for metric in bands.METRICS:
        v = verdicts["metrics"][metric]
        assert v["inside"], f"port mean {metric} {v['port_mean']:.4f} outside the Keras band {v['keras_band']}"


@pytest.mark.full_budget
def test_full_budget_baselines_overfit_and_dropout_runs_do_not(tmp_path):
    overfitting = full_budget_verdicts(tmp_path)["overfitting"]
    for framework in ("keras", "lightning"):
        baselines = [v for v in overfitting if v["framework"] == framework and v["variant"] == "baseline"]
        assert baselines, f"no 31-epoch {framework} baseline run is recorded in reports/runs"
        assert all(v["signature"] for v in baselines), baselines
    dropout = [v for v in overfitting if v["variant"] == "dropout"]
    assert dropout and not any(v["signature"] for v in dropout), [v["run"] for v in dropout if v["signature"]]
