"""The run comparison: its statistics against hand-computed values, and the CLI end to end.

Run folders are built in tmp_path with known predictions, so every expected number below is
worked out by hand from how those predictions were made.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cifar_common.analysis.comparison import compare_runs
from cifar_common.analysis.stats import (accuracy_interval, agreement, confusion_from_predictions, mcnemar_exact,
                                         most_confused_pairs, per_class_recall)
from cifar_common.compare import main
from cifar_common.errors import UserError
from cifar_common.rundir.folder import (read_run, write_config, write_confusion, write_history, write_metrics,
                                        write_predictions)

N_IMAGES = 300
NUM_CLASSES = 10
OUTPUT_FILES = ("comparison.json", "comparison.md", "confusion.png", "curves.png", "recall.png")


def true_labels(n: int = N_IMAGES) -> np.ndarray:
    return np.arange(n) % NUM_CLASSES


def one_hot_ish(y_pred: np.ndarray) -> np.ndarray:
    """Probabilities whose argmax is exactly `y_pred`: 0.91 on it, 0.01 elsewhere."""
    probs = np.full((len(y_pred), NUM_CLASSES), 0.01, dtype=np.float32)
    probs[np.arange(len(y_pred)), y_pred] = 0.91
    return probs


def predictions_a(y_true: np.ndarray) -> np.ndarray:
    """A is wrong on images 0..29, always taking class y for y + 1."""
    y_pred = y_true.copy()
    y_pred[0:30] = (y_true[0:30] + 1) % NUM_CLASSES
    return y_pred


def predictions_b(y_true: np.ndarray) -> np.ndarray:
    """B is wrong on images 20..56: on 20..24 with A's wrong class, on 25..56 with y + 2."""
    y_pred = y_true.copy()
    y_pred[20:25] = (y_true[20:25] + 1) % NUM_CLASSES
    y_pred[25:57] = (y_true[25:57] + 2) % NUM_CLASSES
    return y_pred


def write_run(parent: Path, name: str, y_true: np.ndarray, y_pred: np.ndarray, variant: str,
              epochs: int = 6) -> Path:
    run_dir = parent / name
    run_dir.mkdir()
    write_config(run_dir, {"training": {"variant": variant, "epochs": epochs, "seed": 42}})
    write_history(run_dir, [{"epoch": e, "loss": 2.0 / e, "accuracy": 0.5 + 0.05 * e,
                                  "val_loss": 2.2 / e, "val_accuracy": 0.45 + 0.05 * e}
                                 for e in range(1, epochs + 1)])
    write_metrics(run_dir, {"framework": "lightning", "variant": variant, "seed": 42,
                                 "test_accuracy": float(np.mean(y_pred == y_true)), "epochs": epochs,
                                 "fit_seconds": 1.0})
    write_predictions(run_dir, y_true, one_hot_ish(y_pred))
    write_confusion(run_dir, confusion_from_predictions(y_true, y_pred, NUM_CLASSES))
    return run_dir


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    y_true = true_labels()
    return (write_run(tmp_path, "run-a", y_true, predictions_a(y_true), "baseline"),
            write_run(tmp_path, "run-b", y_true, predictions_b(y_true), "dropout", epochs=8))


@pytest.fixture(scope="module")
def cli_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """One in-process CLI run (plots are the slow part, so the tests share it)."""
    parent = tmp_path_factory.mktemp("cli")
    y_true = true_labels()
    run_a = write_run(parent, "run-a", y_true, predictions_a(y_true), "baseline")
    run_b = write_run(parent, "run-b", y_true, predictions_b(y_true), "dropout", epochs=8)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main([str(run_a), str(run_b)])
    return parent, printed.getvalue(), status


def test_mcnemar_matches_hand_computed_values() -> None:
    """McNemar's b, c and exact p equal the binomial tail worked out by hand."""
    # b = 7 (A right, B wrong), c = 1: p = 2 * (C(8,0) + C(8,1)) / 2^8
    result = mcnemar_exact([True] * 7 + [False] + [True] * 5, [False] * 7 + [True] + [True] * 5)
    assert (result["b"], result["c"]) == (7, 1)
    assert result["p"] == pytest.approx(2 * (1 + 8) / 2**8) == 0.0703125
    # b = 10, c = 2: p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12
    result = mcnemar_exact([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)
    assert (result["b"], result["c"]) == (10, 2)
    assert result["p"] == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    # b = c: the doubled tail passes 1 and is capped there.
    assert mcnemar_exact([True, False, True, False], [False, True, False, True]) == {"b": 2, "c": 2, "p": 1.0}
    # No discordant image at all: nothing to tell them apart.
    assert mcnemar_exact([True, False, True], [True, False, True]) == {"b": 0, "c": 0, "p": 1.0}


def test_wilson_interval_matches_published_values() -> None:
    """Wilson 95% intervals: 80 of 100 is (0.7112, 0.8666); 0 of 10 is (0, 0.2775), whose upper end is
    z² / (n + z²), and 10 of 10 its mirror image (Newcombe 1998's worked cases)."""
    assert accuracy_interval(80, 100) == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert accuracy_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert accuracy_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_agreement_is_share_of_identical_predictions() -> None:
    """Agreement counts images with the same predicted class, whether right or wrong."""
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    assert agreement(np.array([0, 0]), np.array([5, 5])) == 0.0


def test_recall_is_diagonal_over_row_totals_and_nan_for_missing_class() -> None:
    """Per-class recall is right / images of the class (rows = truth), nan for a class with no images."""
    confusion = np.array([[8, 2, 0],
                          [1, 3, 0],
                          [0, 0, 0]])
    recall = per_class_recall(confusion)
    assert recall[:2] == pytest.approx([8 / 10, 3 / 4])
    assert math.isnan(recall[2])


def test_most_confused_pairs_are_largest_off_diagonal_cells_with_ties_in_index_order() -> None:
    """The pairs are off-diagonal only, largest first, ties in (truth, predicted) order, zeros left out."""
    confusion = np.array([[50, 4, 9, 0],
                          [9, 60, 1, 0],
                          [2, 9, 70, 0],
                          [0, 0, 0, 80]])
    assert most_confused_pairs(confusion, k=3) == [(0, 2, 9), (1, 0, 9), (2, 1, 9)]
    assert most_confused_pairs(confusion, k=4)[-1] == (0, 1, 4)
    assert len(most_confused_pairs(np.diag([5, 5, 5]), k=3)) == 0


def test_compare_runs_matches_known_predictions(two_runs: tuple[Path, Path]) -> None:
    """compare_runs gives the accuracies, agreement, McNemar counts and recall the crafted runs imply."""
    result = compare_runs(read_run(two_runs[0]), read_run(two_runs[1]))
    assert result["accuracy_a"] == pytest.approx(270 / 300)
    assert result["accuracy_b"] == pytest.approx(263 / 300)
    # Disagreements: 0..19 (A wrong, B right), 25..29 (both wrong, different classes), 30..56 (B wrong).
    assert result["agreement"] == pytest.approx((300 - 20 - 5 - 27) / 300)
    assert (result["mcnemar_b"], result["mcnemar_c"]) == (27, 20)
    # Images 0..29 are 3 of each class, so A's recall is 27/30 for every class.
    assert result["recall_a"] == pytest.approx([27 / 30] * NUM_CLASSES)
    assert result["recall_change"] == pytest.approx(np.subtract(result["recall_b"], result["recall_a"]))
    assert result["final_val_accuracy_a"] == pytest.approx(0.45 + 0.05 * 6)
    assert result["final_val_accuracy_b"] == pytest.approx(0.45 + 0.05 * 8)
    # The last 5 of 0.45 + 0.05 e for e = 2..6: mean at e = 4, std 0.05 * std(1..5) = 0.05 * sqrt(2.5).
    assert result["late_val_accuracy_a"]["epochs"] == 5
    assert result["late_val_accuracy_a"]["mean"] == pytest.approx(0.45 + 0.05 * 4)
    assert result["late_val_accuracy_a"]["std"] == pytest.approx(0.05 * math.sqrt(2.5))
    assert result["late_val_accuracy_b"]["mean"] == pytest.approx(0.45 + 0.05 * 6)
    assert result["confused_pairs_a"][0] == {"truth": "airplane", "predicted": "automobile", "count": 3}
    assert result["stored_confusion_matches_a"] and result["stored_confusion_matches_b"]


def test_compare_runs_refuses_different_test_sets(tmp_path: Path) -> None:
    """Runs scored on different images (length or labels) cannot be paired and raise UserError."""
    y_true = true_labels()
    run_a = read_run(write_run(tmp_path, "a", y_true, y_true, "baseline"))
    shorter = read_run(write_run(tmp_path, "short", y_true[:200], y_true[:200], "baseline"))
    relabelled = np.roll(y_true, 1)
    shuffled = read_run(write_run(tmp_path, "shuffled", relabelled, relabelled, "baseline"))
    for other in (shorter, shuffled):
        with pytest.raises(UserError, match="different test sets"):
            compare_runs(run_a, other)


def test_cli_writes_every_output_file(cli_output: tuple[Path, str, int]) -> None:
    """The CLI exits 0 and writes the JSON, the report and three non-empty PNG figures."""
    parent, _, status = cli_output
    assert status == 0
    out = parent / "comparisons" / "run-a-vs-run-b"
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    for name in ("confusion.png", "curves.png", "recall.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "comparison.md").read_text()
    assert "![" in report and "confusion.png" in report and "McNemar" in report


def test_cli_json_holds_the_comparison(cli_output: tuple[Path, str, int]) -> None:
    """comparison.json is strict JSON with the headline keys and the crafted runs' values."""
    parent, _, _ = cli_output
    result = json.loads((parent / "comparisons" / "run-a-vs-run-b" / "comparison.json").read_text())
    for key in ("accuracy_a", "accuracy_b", "agreement", "mcnemar_p", "recall_a", "recall_b",
                "confusion_a", "confusion_b"):
        assert key in result, key
    assert result["accuracy_a"] == pytest.approx(0.9)
    assert np.array(result["confusion_b"]).shape == (NUM_CLASSES, NUM_CLASSES)
    assert np.array(result["confusion_b"]).sum() == N_IMAGES


def test_cli_prints_table_and_output_folder(cli_output: tuple[Path, str, int]) -> None:
    """The terminal shows both accuracies, agreement and McNemar p, and ends naming the output folder."""
    parent, printed, _ = cli_output
    lines = printed.strip().splitlines()
    assert "0.9000" in printed and "0.8767" in printed
    assert "agreement" in printed and "p=" in printed
    assert lines[-1] == f"comparison folder {parent / 'comparisons' / 'run-a-vs-run-b'}"
    assert len(lines) <= 8


def test_cli_run_twice_keeps_the_first_output(cli_output: tuple[Path, str, int]) -> None:
    """Running the same comparison again writes a new folder and leaves the first one byte for byte."""
    parent, _, _ = cli_output
    first = parent / "comparisons" / "run-a-vs-run-b"
    before = {name: (first / name).read_bytes() for name in OUTPUT_FILES}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main([str(parent / "run-a"), str(parent / "run-b")]) == 0
    second = parent / "comparisons" / "run-a-vs-run-b-1"
    assert printed.getvalue().strip().splitlines()[-1] == f"comparison folder {second}"
    assert all((second / name).is_file() for name in OUTPUT_FILES)
    assert {name: (first / name).read_bytes() for name in OUTPUT_FILES} == before


def test_cli_mismatched_test_sets_exit_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mismatched test sets end with exit status 2, a one-line error and no output folder."""
    y_true = true_labels()
    run_a = write_run(tmp_path, "a", y_true, y_true, "baseline")
    run_b = write_run(tmp_path, "b", y_true[:100], y_true[:100], "baseline")
    assert main([str(run_a), str(run_b)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "different test sets" in error
    assert not (tmp_path / "comparisons").exists()
