"""End to end: `python -m keras_reference.fit` and `python -m lightning_impl.fit` on a 600-image subset.

Each framework trains once (one epoch, dropout variant) in a module-scoped subprocess run; the
tests then read what it wrote. Only the new-folder test runs Lightning a second time (100 images).
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from cifar_common.analysis.stats import confusion_from_predictions
from cifar_common.data import TEST_FILE, read_batch
from cifar_common.rundir.folder import HISTORY_COLUMNS, LAUNCH_FILE, PLOT_FILES, RUN_FILES, read_run
from cifar_common.spec.config import DEFAULT_DATA_ORDER

SUBSET = 600
FRAMEWORKS = ("keras", "lightning")
MODULES = {"keras": "keras_reference.fit", "lightning": "lightning_impl.fit"}
MODEL_SUFFIX = {"keras": ".keras", "lightning": ".ckpt"}
VERSION_KEYS = {"keras": {"python", "numpy", "tensorflow", "keras"},
                "lightning": {"python", "numpy", "torch", "lightning", "torchmetrics"}}
SUMMARY = re.compile(r"^test accuracy (\d\.\d{4})  run folder (.+)$")


def fit(run_cli, framework: str, out: Path, subset: int = SUBSET) -> subprocess.CompletedProcess:
    return run_cli("-m", MODULES[framework], "--dropout", "--subset", str(subset), "--epochs", "1", "--out", str(out))


@dataclass(frozen=True)
class Finished:
    framework: str
    out: Path
    result: subprocess.CompletedProcess
    entries_after_run: tuple[str, ...]  # what --out held right after the run
    started: datetime.datetime  # around the whole process, as the test saw it
    wall_seconds: float

    @property
    def summary(self) -> re.Match:
        lines = self.result.stdout.strip().splitlines()
        match = SUMMARY.match(lines[-1]) if lines else None
        assert match, f"last stdout line is not the summary: {lines[-1:]!r}"
        return match

    @property
    def run_dir(self) -> Path:
        return Path(self.summary.group(2))

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())

    @property
    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.run_dir / "predictions.npz") as npz:
            return npz["y_true"], npz["probs"]


class FitRuns:
    """Runs each framework at most once per module, on first use."""

    def __init__(self, run_cli, tmp_path_factory):
        self.run_cli, self.tmp_path_factory = run_cli, tmp_path_factory
        self.done: dict[str, Finished] = {}

    def get(self, framework: str) -> Finished:
        if framework not in self.done:
            out = self.tmp_path_factory.mktemp(f"{framework}-runs")
            started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
            result = fit(self.run_cli, framework, out)
            wall_seconds = time.perf_counter() - clock
            if result.returncode != 0:
                pytest.fail(f"{MODULES[framework]} exited {result.returncode}:\n{result.stderr[-4000:]}",
                            pytrace=False)
            self.done[framework] = Finished(framework, out, result, tuple(sorted(p.name for p in out.iterdir())),
                                            started, wall_seconds)
        return self.done[framework]


@pytest.fixture(scope="module")
def fit_runs(run_cli, tmp_path_factory) -> FitRuns:
    return FitRuns(run_cli, tmp_path_factory)


@pytest.fixture(params=FRAMEWORKS)
def finished(request, fit_runs) -> Finished:
    return fit_runs.get(request.param)


@pytest.fixture(scope="module")
def real_test_labels(cifar_dir) -> np.ndarray:
    _, labels = read_batch(cifar_dir / TEST_FILE)
    return labels[:SUBSET]


def files_under(folder: Path) -> set[str]:
    """Relative paths, TensorBoard's event files (named after time, host and process) as EVENTS."""
    return {re.sub(r"events\.out\.tfevents\..+$", "EVENTS", path.relative_to(folder).as_posix())
            for path in folder.rglob("*") if path.is_file()}


def expected_files(framework: str) -> set[str]:
    suffix = MODEL_SUFFIX[framework]
    lightning_only = {"tensorboard/hparams.yaml"} if framework == "lightning" else set()
    return {*RUN_FILES, LAUNCH_FILE, *(f"plots/{name}" for name in PLOT_FILES), f"model{suffix}",
            f"checkpoints/last{suffix}", "tensorboard/EVENTS", *lightning_only}


def test_fit_exits_0_and_prints_accuracy_and_run_folder_last(finished):
    """Exit status 0; the last stdout line gives the test accuracy and the one new folder under --out."""
    assert finished.result.returncode == 0
    assert finished.summary.group(1) == f"{finished.metrics['test_accuracy']:.4f}"
    assert finished.run_dir.parent == finished.out and finished.run_dir.is_dir()
    assert finished.entries_after_run == (finished.run_dir.name,)
    assert finished.run_dir.name.startswith(f"{finished.framework}-dropout-")


def test_run_folder_holds_exactly_the_run_files(finished):
    """RUN_FILES, launch.json, plots/PLOT_FILES, the model, checkpoints/last and tensorboard/, none empty,
    nothing else."""
    assert files_under(finished.run_dir) == expected_files(finished.framework)
    assert all(path.stat().st_size > 0 for path in finished.run_dir.rglob("*") if path.is_file())


def test_history_has_one_row_with_the_keras_columns(finished):
    """history.csv: header epoch, loss, accuracy, val_loss, val_accuracy and one row for epoch 1."""
    with (finished.run_dir / "history.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(HISTORY_COLUMNS) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(rows) == 2 and rows[1][0] == "1"
    loss, accuracy, val_loss, val_accuracy = map(float, rows[1][1:])
    assert all(math.isfinite(v) and v > 0 for v in (loss, val_loss))
    assert 0 <= accuracy <= 1 and 0 <= val_accuracy <= 1
    assert finished.metrics["final_val_accuracy"] == val_accuracy


def test_predictions_are_the_600_test_labels_with_rows_summing_to_1(finished, real_test_labels):
    """predictions.npz: y_true int (600,) equal to the first 600 test labels, probs float32 (600, 10) summing to 1."""
    y_true, probs = finished.predictions
    assert y_true.dtype.kind == "i" and y_true.shape == (SUBSET,)
    np.testing.assert_array_equal(y_true, real_test_labels)
    assert probs.dtype == np.float32 and probs.shape == (SUBSET, 10)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=1e-5)  # float32 softmax


def test_confusion_counts_the_600_predictions(finished):
    """confusion.csv is 10x10, sums to 600, and is the count of (true, argmax) pairs of predictions.npz."""
    confusion = np.loadtxt(finished.run_dir / "confusion.csv", delimiter=",", dtype=np.int64, ndmin=2)
    y_true, probs = finished.predictions
    assert confusion.shape == (10, 10) and confusion.sum() == SUBSET
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(y_true, minlength=10))
    np.testing.assert_array_equal(confusion, confusion_from_predictions(y_true, probs.argmax(axis=1), 10))


def test_metrics_json_has_the_shared_fields(finished):
    """metrics.json: framework, variant, seed, 669,354 parameters, test loss/accuracy, timing, versions."""
    m = finished.metrics
    assert m["framework"] == finished.framework and m["variant"] == "dropout" and m["seed"] == 42
    assert m["epochs"] == 1 and m["parameter_count"] == 669354
    assert m["train_images"] == 420 and m["test_images"] == SUBSET
    assert isinstance(m["test_loss"], float) and math.isfinite(m["test_loss"]) and m["test_loss"] > 0
    confusion = np.loadtxt(finished.run_dir / "confusion.csv", delimiter=",", dtype=np.int64)
    assert round(m["test_accuracy"] * SUBSET) == np.trace(confusion)  # float32 accuracy of k/600
    # The fit is inside the process the test timed, so its rate beats images over the process's lifetime.
    assert 0 < m["fit_seconds"] < finished.wall_seconds
    assert m["train_images_per_second"] > m["train_images"] * m["epochs"] / finished.wall_seconds
    provenance = m["provenance"]
    finished_at = datetime.datetime.fromisoformat(provenance["finished_at"])
    assert finished.started - datetime.timedelta(seconds=1) <= finished_at <= datetime.datetime.now(datetime.timezone.utc)
    assert provenance["cpu_count"] == os.cpu_count() and 1 <= provenance["threads"] <= os.cpu_count()
    assert provenance["cpu"] and provenance["platform"] == platform.platform()
    assert set(m["versions"]) >= VERSION_KEYS[finished.framework]
    assert m["versions"]["python"] == platform.python_version()
    assert all(isinstance(v, str) and v for v in m["versions"].values())
    # The --out folder is outside the repository: the record keeps its last part only.
    assert m["command"] == (f"python -m {MODULES[finished.framework]} --dropout --subset {SUBSET} --epochs 1 "
                            f"--out {finished.out.name}")


def test_config_yaml_records_the_settings_used(finished):
    """config.yaml: the dropout config with the --epochs 1 override."""
    config = yaml.safe_load((finished.run_dir / "config.yaml").read_text())
    assert set(config) == {"dataset", "architecture", "training"}
    assert config["architecture"]["name"] == "tutorial" and config["training"]["epochs"] == 1
    assert [layer["rate"] for layer in config["architecture"]["layers"] if layer["layer"] == "Dropout"] == [0.25] * 3 + [0.5]
    assert config["training"]["batch_size"] == 256 and config["training"]["seed"] == 42
    assert config["training"]["validation_split"] == 0.3
    assert config["training"]["data_order"] == DEFAULT_DATA_ORDER[finished.framework]


def test_every_run_records_its_framework_and_data_order(finished):
    """launch.json names the framework (what --resume checks); metrics.json the order the run trained in."""
    assert json.loads((finished.run_dir / LAUNCH_FILE).read_text())["framework"] == finished.framework
    assert finished.metrics["data_order"] == DEFAULT_DATA_ORDER[finished.framework]
    assert read_run(finished.run_dir).data_order == finished.metrics["data_order"]


def test_read_run_reads_the_run_folder(finished):
    """read_run reads the folder back: one history row, 600 predictions, the metrics as written."""
    run = read_run(finished.run_dir)
    assert run.metrics == finished.metrics
    assert all(len(run.history[key]) == 1 for key in HISTORY_COLUMNS)
    assert run.y_true.shape == (SUBSET,) and run.probs.shape == (SUBSET, 10) and run.confusion.shape == (10, 10)
    assert run.config["training"]["epochs"] == 1


def test_both_frameworks_write_the_same_file_names(fit_runs):
    """Keras and Lightning run folders hold the same file names (.keras and .ckpt counted as one)."""
    def normalised(framework: str) -> set[str]:
        names = files_under(fit_runs.get(framework).run_dir) - {"tensorboard/hparams.yaml"}  # Lightning's own
        return {re.sub(re.escape(MODEL_SUFFIX[framework]) + "$", ".MODEL", name) for name in names}

    assert normalised("keras") == normalised("lightning")


def test_a_second_run_makes_a_new_folder_and_leaves_the_first_untouched(fit_runs):
    """A second run with the same --out makes a new complete folder; the first keeps every file, byte and mtime."""
    first = fit_runs.get("lightning")

    def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
        return {path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
                for path in sorted(folder.rglob("*")) if path.is_file()}

    before = snapshot(first.run_dir)
    result = fit(fit_runs.run_cli, "lightning", first.out, subset=100)
    assert result.returncode == 0, result.stderr[-4000:]
    second = Path(SUMMARY.match(result.stdout.strip().splitlines()[-1]).group(2))
    assert second != first.run_dir and second.parent == first.out
    assert sorted(p.name for p in first.out.iterdir()) == sorted([first.run_dir.name, second.name])
    assert files_under(second) == expected_files("lightning")
    assert read_run(second).y_true.shape == (100,)
    assert snapshot(first.run_dir) == before
