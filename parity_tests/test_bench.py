"""`make bench` and `make bench-fit`: the FLOP count, the ceiling shares and the ratios on known inputs,
and every worker running and reporting."""
from __future__ import annotations

import json

import pytest

from cifar_common.bench.driver import main, table, with_ratios_and_shares
from cifar_common.bench.timing import TRAIN_OVER_FORWARD, forward_flops
from cifar_common.rundir.metrics_json import cpu_model
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.layers import Architecture
from lightning_impl.bench import counted_flops
from lightning_impl.network import CifarCNN
from parity_tests.harness import ARCHITECTURES, architecture

# The tutorial's network by hand, multiply-adds per image: conv (in, out, output side) and dense (in, out).
CONVS = ((3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 64, 8), (64, 64, 8))
DENSES = ((4 * 4 * 64, 512), (512, 10))
TUTORIAL_MULTIPLY_ADDS = 29_725_696  # 884,736 + 9,437,184 + 4,718,592 + 9,437,184 + 2 x 2,359,296 + 524,288 + 5,120


def test_hand_count_of_the_tutorial_network_is_29_7_million_multiply_adds():
    """The count from the architecture's shapes is the figure worked out by hand, layer by layer."""
    by_hand = sum(side * side * o * i * 9 for i, o, side in CONVS) + sum(i * o for i, o in DENSES)
    assert by_hand == TUTORIAL_MULTIPLY_ADDS
    for config_name in ("baseline", "dropout"):
        assert forward_flops(architecture(config_name)) == 2 * TUTORIAL_MULTIPLY_ADDS


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_flop_counter_on_the_port_agrees_with_the_hand_count(config_name):
    """torch's FLOP counter on the port's network: forward = the hand count from the shapes (strided
    convolutions and global pooling included); training = 3 x forward less the first layer's input
    gradient, which training never computes."""
    described = architecture(config_name)
    counted = counted_flops(CifarCNN(described), DatasetConfig())
    assert counted["forward"] == forward_flops(described)
    first_layer_input_gradient = forward_flops(Architecture("first", described.layers[:1]))
    assert counted["train"] == TRAIN_OVER_FORWARD * forward_flops(described) - first_layer_input_gradient


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
    rows = {r["name"]: r for r in with_ratios_and_shares(RECORDS)}
    lightning, inference = rows["lightning train 32-true"], rows["port inference 32-true"]
    assert lightning["x_keras_tensorflow"] == pytest.approx(1.2) and lightning["x_keras_torch"] == pytest.approx(1.5)
    assert lightning["gflops"] == pytest.approx(48.0) and lightning["share_of_ceiling"] == pytest.approx(0.6)
    assert inference["x_keras_tensorflow"] == pytest.approx(1.2) and inference["x_keras_torch"] == pytest.approx(1.5)
    assert inference["gflops"] == pytest.approx(60.0) and inference["share_of_ceiling"] == pytest.approx(0.75)
    printed = {line[:36].strip(): line[36:].split() for line in table(list(rows.values())).splitlines()[1:]}
    assert printed["lightning train 32-true"][:7] == ["300", "270", "330", "1.20", "1.50", "48.0", "60%"]


@pytest.mark.parametrize("flags, message", [(["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
                                            (["--threads", "0"], "argument --threads: must be a positive integer"),
                                            (["--fit", "--data-dir", "missing-folder"], "missing-folder")])
def test_bad_flags_fail_in_one_line_before_any_worker_starts(flags, message, capsys):
    """Exit status 2 and the flag named on the last line (argparse prints its usage above), no worker run."""
    try:
        status = main(flags)
    except SystemExit as exited:  # argparse's own refusal
        status = exited.code
    assert status == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert message in lines[-1] and "error" in lines[-1] and not any(line.startswith("running ") for line in lines)


def test_bench_runs_every_worker_and_writes_the_report(run_cli, tmp_path):
    """Both Keras backends, the port under Lightning and bare, the two matmuls and the FLOP count; the
    record names the CPU model and no folder of this machine."""
    out = tmp_path / "bench.json"
    # One thread: a busy machine stalls two (docs/speed.md).
    finished = run_cli("-m", "cifar_common.bench", "--warmup", "1", "--steps", "1", "--repeats", "2",
                       "--batch-size", "32", "--threads", "1", "--out", str(out))
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
    assert report["flops"]["forward_per_image"] == report["flops"]["hand_forward_per_image"] == 2 * TUTORIAL_MULTIPLY_ADDS
    assert set(report["lightning_overhead_over_bare"]) == {"32-true"}
    assert {"torch", "lightning", "keras", "tensorflow"} <= set(report["versions"])
    assert report["machine"]["cpu"] == cpu_model() and report["machine"]["cpu"] != "x86_64"
    assert report["command"].endswith("--threads 1 --out bench.json")
    assert "× K/torch" in finished.stdout and "ceiling: " in finished.stdout


@pytest.mark.report
def test_bench_fit_times_the_second_epoch_of_each_framework_alternating(run_cli, tmp_path):
    """`make bench-fit` on a few real images: Keras, port, port, Keras, each with two epochs timed."""
    out = tmp_path / "bench-fit.json"
    finished = run_cli("-m", "cifar_common.bench", "--fit", "--subset", "600", "--out", str(out))
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["framework"] for r in report["runs"]] == ["keras", "port", "port", "keras"]
    for r in report["runs"]:
        assert len(r["epoch_seconds"]) == 2 and min(r["epoch_seconds"]) > 0
        assert (r["train_images"], r["val_images"]) == (420, 180)
    assert report["port_over_keras"] > 0 and "port/Keras" in finished.stdout
