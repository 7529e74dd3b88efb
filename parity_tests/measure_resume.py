"""How close a Keras run killed with SIGKILL and resumed comes to the same run left alone.

    CIFAR10_DIR=... python -m parity_tests.measure_resume [--subset 512] [--batch-size 32] [--epochs 3]

Runs `python -m keras_reference.fit` three times in subprocesses (uninterrupted; killed once its
first epoch's checkpoint exists; resumed) and prints, per epoch, the largest history difference,
then the largest difference between the final weights. docs/troubleshooting.md records the figures.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

from cifar_common.paths import REPO_ROOT
from cifar_common.rundir.folder import EPOCH_METRICS, read_history
from keras_reference.checkpoints import LAST
from parity_tests.cli_runs import only_run_dir

COMMAND = [sys.executable, "-m", "keras_reference.fit"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_to_end(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def kill_after_first_epoch(args: list[str], out: Path, timeout: float = 900) -> Path:
    """Start a run under `out`, SIGKILL it as soon as its first epoch's checkpoint is in place; its folder."""
    process = subprocess.Popen([*COMMAND, *args, "--out", str(out)], cwd=REPO_ROOT, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not (out.is_dir() and any((run_dir / LAST).is_file() for run_dir in out.iterdir())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the run ended (status {process.returncode}) before its first checkpoint")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return only_run_dir(out)


def weights(model_file: Path) -> dict[str, np.ndarray]:
    """Every array in a .keras file's weights (model and optimizer), by its path inside the file."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(model_file) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as h5:
            h5.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", default="512")
    parser.add_argument("--batch-size", default="32")
    parser.add_argument("--epochs", default="3")
    options = parser.parse_args()
    args = ["--dropout", "--subset", options.subset, "--batch-size", options.batch_size, "--epochs", options.epochs]
    with tempfile.TemporaryDirectory() as tmp:
        whole_out, killed_out = Path(tmp, "whole"), Path(tmp, "killed")
        run_to_end([*args, "--out", str(whole_out)]).check_returncode()
        run_dir = kill_after_first_epoch(args, killed_out)
        resumed = run_to_end(["--resume", str(run_dir)])
        resumed.check_returncode()
        whole = only_run_dir(whole_out)
        a, b = read_history(whole), read_history(run_dir)
        for i, epoch in enumerate(a["epoch"]):
            largest = max(abs(a[k][i] - b[k][i]) for k in EPOCH_METRICS)
            print(f"epoch {int(epoch)}: largest history difference {largest:.3g}")
        wa, wb = weights(whole / "model.keras"), weights(run_dir / "model.keras")
        assert wa.keys() == wb.keys()
        diffs = {name: float(np.abs(wa[name].astype(np.float64) - wb[name]).max()) for name in wa}
        worst = max(diffs, key=diffs.get)
        print(f"final weights: {sum(d == 0 for d in diffs.values())} of {len(diffs)} arrays identical; "
              f"largest difference {diffs[worst]:.3g} ({worst})")


if __name__ == "__main__":
    main()
