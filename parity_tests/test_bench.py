"""`make bench` and `make bench-fit`: the FLOP count, the ceiling shares and the ratios on known inputs,
and every worker running and reporting."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_common.bench import (Settings, add_ratios_and_shares, conv2d_multiply_adds, dense_multiply_adds,
                                 fit_comparison, interleaved_images_per_second, main, paired_ratios, pooled,
                                 share_of_ceiling, table, trainer_overhead, training_flops)
from cifar_common.errors import UserError
from cifar_common.spec.config import DatasetConfig
from lightning_impl.bench import build_module, counted_flops, hand_count_multiply_adds

ROOT = Path(__file__).resolve().parent.parent
# The tutorial's network by hand, multiply-adds per image: conv (in, out, output side) and dense (in, out).
CONVS = ((3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 64, 8), (64, 64, 8))
DENSES = ((4 * 4 * 64, 512), (512, 10))
TUTORIAL_MULTIPLY_ADDS = 29_725_696  # 884,736 + 9,437,184 + 4,718,592 + 9,437,184 + 2 x 2,359,296 + 524,288 + 5,120


def test_hand_count_of_the_tutorial_network_is_29_7_million_multiply_adds():
    """Per-layer formulas on the known layer sizes add up to the figure worked out by hand."""
    assert conv2d_multiply_adds(3, 32, (3, 3), (32, 32)) == 32 * 32 * 32 * 3 * 9 == 884_736
    assert dense_multiply_adds(1024, 512) == 524_288
    total = (sum(conv2d_multiply_adds(i, o, (3, 3), (side, side)) for i, o, side in CONVS)
             + sum(dense_multiply_adds(i, o) for i, o in DENSES))
    assert total == TUTORIAL_MULTIPLY_ADDS
    assert training_flops(2 * total) == 6 * TUTORIAL_MULTIPLY_ADDS


@pytest.mark.parametrize("dropout", [False, True])
def test_flop_counter_on_the_port_agrees_with_the_hand_count(dropout):
    """torch's FLOP counter on the port's network: forward = 2 x the hand count; training = 3 x forward
    less the first layer's input gradient, which training never computes."""
    network, dataset = build_module(dropout).network, DatasetConfig()
    assert hand_count_multiply_adds(network, dataset) == TUTORIAL_MULTIPLY_ADDS
    forward = counted_flops(network, dataset, train=False)
    assert forward == 2 * TUTORIAL_MULTIPLY_ADDS
    conv1_input_gradient = 2 * conv2d_multiply_adds(3, 32, (3, 3), (32, 32))
    assert counted_flops(network, dataset, train=True) == training_flops(forward) - conv1_input_gradient


def speed(name: str, task: str, rate: float, backend: str | None = None) -> dict:
    return {"kind": "speed", "name": name, "task": task, "images_per_second": rate, "min": rate * 0.9,
            "max": rate * 1.1, "threads": 2, "peak_mib": 1000.0, "notes": {"backend": backend} if backend else {}}


RECORDS = [
    {"kind": "matmul", "library": "numpy", "gflops": 80.0},
    {"kind": "matmul", "library": "torch (cpu)", "gflops": 64.0},
    {"kind": "flops", "forward_per_image": 50e6, "train_per_image": 160e6},
    speed("keras/tensorflow train float32", "train", 250, "tensorflow"),
    speed("keras/tensorflow inference float32", "inference", 1000, "tensorflow"),
    speed("keras/torch train float32", "train", 200, "torch"),
    speed("keras/torch inference float32", "inference", 800, "torch"),
    speed("lightning train 32-true", "train", 300),
    speed("bare torch train 32-true", "train", 320),
    speed("port inference 32-true", "inference", 1200),
]


def test_rows_carry_ratios_to_each_keras_backend_and_their_share_of_the_faster_matmul():
    """Ratios are to Keras's row of the same task; shares use that task's FLOPs and the faster library."""
    assert share_of_ceiling(250, 178.4e6, 68.0) == pytest.approx(250 * 0.1784 / 68)
    rows = {r["name"]: r for r in add_ratios_and_shares(RECORDS)}
    lightning, inference = rows["lightning train 32-true"], rows["port inference 32-true"]
    assert lightning["x_keras_tensorflow"] == pytest.approx(1.2) and lightning["x_keras_torch"] == pytest.approx(1.5)
    assert lightning["gflops"] == pytest.approx(48.0) and lightning["share_of_ceiling"] == pytest.approx(0.6)
    assert inference["x_keras_tensorflow"] == pytest.approx(1.2) and inference["x_keras_torch"] == pytest.approx(1.5)
    assert inference["gflops"] == pytest.approx(60.0) and inference["share_of_ceiling"] == pytest.approx(0.75)
    assert trainer_overhead(list(rows.values())) == pytest.approx({"32-true": 320 / 300 - 1})
    printed = {line[:36].strip(): line[36:].split() for line in table(list(rows.values())).splitlines()[1:]}
    assert printed["lightning train 32-true"][:7] == ["300", "270", "330", "1.20", "1.50", "48.0", "60%"]


def test_trials_take_turns_and_are_compared_window_by_window():
    """Each variant warms up, then their windows alternate; a trial's ratio pairs window i with window i."""
    calls = []
    rates = interleaved_images_per_second({"eager": lambda n: calls.append(("eager", n)),
                                           "compiled": lambda n: calls.append(("compiled", n))},
                                          Settings(batch_size=4, warmup=2, steps=3, repeats=2))
    assert calls == [("eager", 2), ("compiled", 2), ("eager", 3), ("compiled", 3), ("eager", 3), ("compiled", 3)]
    assert {name: len(windows) for name, windows in rates.items()} == {"eager": 2, "compiled": 2}
    rows = [{"name": "x eager", "rates": [100, 50, 200], "notes": {}},
            {"name": "x compiled", "rates": [110, 60, 180], "notes": {"against": "x eager"}}]
    assert paired_ratios(rows) == pytest.approx({"x compiled / x eager": 1.1})


def test_rounds_pool_each_rows_windows_and_each_librarys_matmul_windows():
    """Two rounds of the same workers give one row each, its median over every window of both rounds."""
    first = [{"kind": "matmul", "library": "numpy", "windows": [60.0, 70.0], "gflops": 65.0},
             {"kind": "flops", "forward_per_image": 1.0},
             {"kind": "speed", "name": "port inference 32-true", "rates": [100.0, 300.0], "images_per_second": 200.0}]
    second = [{"kind": "speed", "name": "port inference 32-true", "rates": [110.0, 120.0, 500.0],
               "images_per_second": 120.0},
              {"kind": "flops", "forward_per_image": 1.0},
              {"kind": "matmul", "library": "numpy", "windows": [80.0], "gflops": 80.0}]
    merged = pooled(first + second)
    assert [r["kind"] for r in merged] == ["matmul", "flops", "speed"]
    assert merged[0]["windows"] == [60.0, 70.0, 80.0] and merged[0]["gflops"] == 70.0
    row = merged[2]
    assert row["rates"] == [100.0, 300.0, 110.0, 120.0, 500.0]
    assert (row["images_per_second"], row["min"], row["max"]) == (120.0, 100.0, 500.0)
    assert first[2]["rates"] == [100.0, 300.0]  # the workers' records are left as they were


def test_fit_comparison_is_the_port_over_keras_of_the_mean_second_epoch():
    """Only the second epoch of each run counts (the first includes tracing and warm-up)."""
    runs = [{"kind": "epochs", "framework": f, "epoch_seconds": s} for f, s in
            (("keras", [200, 150]), ("port", [130, 120]), ("port", [125, 124]), ("keras", [190, 160]))]
    result = fit_comparison(runs)
    assert result["second_epoch_seconds"] == {"keras": [150, 160], "port": [120, 124]}
    assert result["port_over_keras"] == pytest.approx(122 / 155)
    with pytest.raises(UserError):
        fit_comparison(runs[1:3])


@pytest.mark.parametrize("flags, message", [(["--steps", "0"], "--steps 0: must be at least 1"),
                                            (["--threads", "0"], "--threads 0: must be at least 1"),
                                            (["--rounds", "0"], "--rounds 0: must be at least 1"),
                                            (["--fit", "--data-dir", "missing-folder"], "missing-folder")])
def test_bad_flags_fail_in_one_line_before_any_worker_starts(flags, message, capsys):
    """Exit status 2 and the flag named, with no worker run (the driver would print 'running ...')."""
    assert main(flags) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "running" not in captured.err and len(captured.err.splitlines()) == 1


def test_the_driver_imports_neither_torch_nor_tensorflow():
    """The driver and timing rule are framework-neutral: each framework loads only in its own worker."""
    code = "import sys, cifar_common.bench; print(sorted({'torch', 'tensorflow', 'keras'} & set(sys.modules)))"
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.stdout.strip() == "[]", finished.stderr[-2000:]


def test_bench_runs_every_worker_and_writes_the_report(tmp_path):
    """Both Keras backends, the port under Lightning and bare, the two matmuls and the FLOP count."""
    out = tmp_path / "bench.json"
    # The old entry point, an alias of cifar_common.bench. One thread: a busy machine stalls two (docs/speed.md).
    command = [sys.executable, "-m", "lightning_impl.bench", "--warmup", "1", "--steps", "1", "--repeats", "2",
               "--batch-size", "32", "--threads", "1", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["keras/tensorflow train float32", "keras/tensorflow inference float32",
                     "keras/torch train float32", "keras/torch inference float32", "lightning train 32-true",
                     "bare torch train 32-true", "port inference 32-true"]
    backends = {r["notes"]["backend"] for r in report["results"] if r["name"].startswith("keras")}
    assert backends == {"tensorflow", "torch"}
    for r in report["results"]:
        assert len(r["rates"]) == 2 and r["min"] <= r["images_per_second"] <= r["max"], r["name"]
        assert r["threads"] == 1 and r["peak_mib"] > 0 and 0 < r["share_of_ceiling"], r["name"]
    assert {m["library"]: m["threads"] for m in report["matmul"]} == {"numpy": 1, "torch (cpu)": 1}
    assert report["ceiling"]["gflops"] == max(m["gflops"] for m in report["matmul"]) > 0
    assert report["flops"]["forward_per_image"] == 2 * TUTORIAL_MULTIPLY_ADDS
    assert set(report["lightning_overhead_over_bare"]) == {"32-true"}
    assert {"torch", "lightning", "keras", "tensorflow"} <= set(report["versions"])
    assert "× K/torch" in finished.stdout and "ceiling: " in finished.stdout


@pytest.mark.report
def test_bench_fit_times_the_second_epoch_of_each_framework_alternating(tmp_path, cifar):
    """`make bench-fit` on a few real images: Keras, port, port, Keras, each with two epochs timed."""
    out = tmp_path / "bench-fit.json"
    command = [sys.executable, "-m", "cifar_common.bench", "--fit", "--subset", "600", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["framework"] for r in report["runs"]] == ["keras", "port", "port", "keras"]
    for r in report["runs"]:
        assert len(r["epoch_seconds"]) == 2 and min(r["epoch_seconds"]) > 0
        assert (r["train_images"], r["val_images"]) == (420, 180)
    assert report["port_over_keras"] > 0 and "port/Keras" in finished.stdout
