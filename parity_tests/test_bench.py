"""`python -m lightning_impl.bench`: every worker runs and reports, and the ratios are computed right."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_impl.bench import table, trainer_overhead

ROOT = Path(__file__).resolve().parent.parent


def result(name: str, task: str, rate: float) -> dict:
    return {"name": name, "task": task, "images_per_second": rate, "peak_mib": 1000.0}


def test_ratios_are_to_keras_of_the_same_task_and_overhead_is_over_the_bare_loop():
    results = [result("keras train float32", "train", 400), result("keras inference float32", "inference", 1000),
               result("lightning train 32-true", "train", 380), result("bare torch train 32-true", "train", 400),
               result("port inference 32-true", "inference", 1500)]
    rows = {line.split("  ")[0].strip(): line.split() for line in table(results).splitlines()[1:]}
    assert rows["lightning train 32-true"][-2] == "0.95"
    assert rows["port inference 32-true"][-2] == "1.50"
    assert trainer_overhead(results) == pytest.approx({"32-true": 400 / 380 - 1})


def test_bench_runs_every_worker_and_writes_bench_json(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "lightning_impl.bench", "--precisions", "32-true", "--warmup", "1",
               "--steps", "1", "--repeats", "2", "--batch-size", "32", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["keras train float32", "keras inference float32", "lightning train 32-true",
                     "bare torch train 32-true", "port inference 32-true"]
    assert all(len(r["rates"]) == 2 and r["images_per_second"] > 0 and r["peak_mib"] > 0 for r in report["results"])
    assert set(report["lightning_overhead_over_bare"]) == {"32-true"}
    assert "× Keras" in finished.stdout and "lightning train 32-true" in finished.stdout
