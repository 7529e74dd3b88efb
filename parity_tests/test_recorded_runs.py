"""Nothing recorded stops working: run folders written by earlier code still resume and still read.

`fixtures/runs-29799d2/` holds two finished 2-epoch runs of `configs/variant_small.yaml` (dropout 0.3,
512 images, batch 64), one per framework, made by the code at commit 29799d2 (the run-folder format of
5cea753: launch.json without "framework", no "data_order"; plots/ left out to keep them small). Each
test turns a copy back into the run as a kill during epoch 2 leaves it (epoch 1's checkpoint and
history row, no results), resumes it with today's code and expects the recorded run, bit for bit.
Bit for bit holds on the machine kind the runs were made on (2-core AMD EPYC, AVX2, CPU only).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_common.data import ENV_VAR

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs-29799d2"
RECORDED = {"keras": FIXTURES / "keras-small-dropout-20261203-075624",
            "lightning": FIXTURES / "lightning-small-dropout-20261203-075543"}
MODULES = {"keras": "keras_reference.fit", "lightning": "lightning_impl.fit"}
SUFFIX = {"keras": ".keras", "lightning": ".ckpt"}
RESULT_FILES = ("metrics.json", "predictions.npz", "confusion.csv")


def killed_in_epoch_2(recorded: Path, framework: str, tmp_path: Path) -> Path:
    """A copy of `recorded` as its run stood after epoch 1: that epoch's checkpoint and history row."""
    run_dir = tmp_path / recorded.name
    shutil.copytree(recorded, run_dir)
    last = run_dir / "checkpoints" / f"last{SUFFIX[framework]}"
    last.unlink()
    last.with_name(f"last.previous{SUFFIX[framework]}").rename(last)  # epoch 1's checkpoint
    for name in (*RESULT_FILES, f"model{SUFFIX[framework]}"):
        (run_dir / name).unlink()
    history = (run_dir / "history.csv").read_text().splitlines(keepends=True)
    (run_dir / "history.csv").write_text("".join(history[:2]))
    return run_dir


def resume(framework: str, run_dir: Path) -> None:
    if not os.environ.get(ENV_VAR):
        pytest.fail(f"set {ENV_VAR} to a cifar-10-batches-py folder: the recorded runs used the real data")
    result = subprocess.run([sys.executable, "-m", MODULES[framework], "--resume", str(run_dir)], cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def port_weights(model_file: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_file, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("framework", ["lightning", "keras"])
def test_recorded_run_resumes_to_its_recorded_result_bit_for_bit(framework, tmp_path):
    """A run folder of earlier code, killed after epoch 1, resumes to the history and weights it recorded."""
    recorded = RECORDED[framework]
    run_dir = killed_in_epoch_2(recorded, framework, tmp_path)
    resume(framework, run_dir)
    assert (run_dir / "history.csv").read_text() == (recorded / "history.csv").read_text()
    with np.load(run_dir / "predictions.npz") as got, np.load(recorded / "predictions.npz") as expected:
        assert np.array_equal(got["probs"], expected["probs"]), "test-set probabilities differ from the recorded run"
    if framework == "lightning":
        expected_weights, got_weights = port_weights(recorded / "model.ckpt"), port_weights(run_dir / "model.ckpt")
        assert expected_weights.keys() == got_weights.keys()
        differ = [name for name in expected_weights if not torch.equal(expected_weights[name], got_weights[name])]
        assert not differ, f"{differ} differ from the recorded run"


def test_recorded_runs_load_in_the_report(tmp_path):
    """`make report`'s reader and builder take in run folders of earlier code."""
    from cifar_common.analysis.results import build, read_recorded
    (tmp_path / "runs").mkdir()
    for run_dir in RECORDED.values():
        shutil.copytree(run_dir, tmp_path / "runs" / run_dir.name, ignore=shutil.ignore_patterns("checkpoints"))
    recorded = read_recorded(tmp_path)
    assert sorted(run.metrics["framework"] for run in recorded) == ["keras", "lightning"]
    for run in recorded:
        assert run.probs.shape == (512, 10) and run.confusion.sum() == 512
    build(tmp_path, out=tmp_path / "built", figures=False)
    assert (tmp_path / "built" / "bands.json").is_file()
