"""The benchmark's timing rule, its settings and synthetic batch, the FLOP hand count and the records
the workers print (numpy only: every worker, Keras's or the port's, uses it)."""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.fit_flags import non_negative_int, positive_int
from cifar_common.spec.layers import Architecture, Conv2D, Dense
from cifar_common.spec.shapes import output_shapes

RESULT_PREFIX = "BENCH "  # the line the driver reads among the frameworks' own output
PRECISION = "32-true"  # Lightning's name; bf16-mixed ran at 0.11x Keras on this CPU (docs/speed.md)
FLOP_PER_MULTIPLY_ADD = 2
TRAIN_OVER_FORWARD = 3  # backward = the gradient of the input and of the weights, each one forward's worth
MATMUL_SIDE = 2048  # square fp32 matrices: large enough for the BLAS to reach its peak, ~0.25 s each here


@dataclass(frozen=True)
class Settings:
    batch_size: int = 256
    warmup: int = 3
    steps: int = 5
    repeats: int = 5
    seed: int = 0


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, value in asdict(Settings()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=non_negative_int if name in ("warmup", "seed") else
                            positive_int, default=value, help=f"(default: {value})")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(**{name: getattr(args, name) for name in asdict(Settings())})


def synthetic_batch(settings: Settings, dataset: DatasetConfig = DatasetConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One fixed batch: float32 NHWC pixels in [0, 1] and integer labels, the same for every worker."""
    rng = np.random.default_rng(settings.seed)
    side = dataset.image_size
    images = rng.random((settings.batch_size, side, side, dataset.channels), dtype=np.float32)
    return images, rng.integers(0, dataset.num_classes, settings.batch_size)


def window_seconds(run_steps: Callable[[int], None], settings: Settings) -> list[float]:
    """Seconds of each of `repeats` windows of `steps` steps, after `warmup` untimed steps; `run_steps(n)`
    runs n steps and returns once they are done (on a GPU, after synchronising)."""
    run_steps(settings.warmup)
    seconds = []
    for _ in range(settings.repeats):
        started = time.perf_counter()
        run_steps(settings.steps)
        seconds.append(time.perf_counter() - started)
    return seconds


def images_per_second(run_steps: Callable[[int], None], settings: Settings) -> list[float]:
    """Images/s of each timed window."""
    return [settings.steps * settings.batch_size / s for s in window_seconds(run_steps, settings)]


def matmul_gflops(multiply: Callable[[], None]) -> list[float]:
    """GFLOP/s of each timed window of `multiply()`, one product of two MATMUL_SIDE-square matrices."""
    settings = Settings(warmup=1, steps=2, repeats=5)

    def run_steps(n: int) -> None:
        for _ in range(n):
            multiply()
    flops = FLOP_PER_MULTIPLY_ADD * MATMUL_SIDE ** 3 * settings.steps
    return [flops / s / 1e9 for s in window_seconds(run_steps, settings)]


def peak_host_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def forward_flops(architecture: Architecture, dataset: DatasetConfig = DatasetConfig()) -> int:
    """One image's forward FLOPs from the layers' shapes: a kernel window per conv output value, a weight per
    dense input and output, 2 per multiply-add; pooling, activations and BatchNorm left out, as torch's are."""
    shape_in = (dataset.image_size, dataset.image_size, dataset.channels)
    multiply_adds = 0
    for layer, shape in zip(architecture.layers, output_shapes(architecture, shape_in)):
        if isinstance(layer, Conv2D):
            multiply_adds += shape[0] * shape[1] * shape[2] * shape_in[-1] * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, Dense):
            multiply_adds += shape_in[-1] * layer.units
        shape_in = shape
    return FLOP_PER_MULTIPLY_ADD * multiply_adds


def emit(kind: str, record: dict) -> None:
    print(RESULT_PREFIX + json.dumps({"kind": kind, **record}), flush=True)


def emit_speed(name: str, task: str, precision: str, rates: list[float], peak_mib: float, threads: int,
               notes: dict | None = None) -> None:
    """One speed row: `rates` are the images/s of each timed window, `threads` the framework's intra-op threads."""
    emit("speed", {"name": name, "task": task, "precision": precision, "rates": rates, "peak_mib": peak_mib,
                   "threads": threads, "notes": notes or {}, "images_per_second": statistics.median(rates),
                   "min": min(rates), "max": max(rates)})
