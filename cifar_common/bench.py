"""What every benchmark worker shares: the synthetic batch, the timing rule and the result line.

Each worker (Keras, the port under Lightning, a bare PyTorch loop) runs in its own process, times
`repeats` windows of `steps` steps after `warmup` steps on the same fixed batch, and prints one JSON
line; the median window gives images/s. Peak memory is the process's peak resident set (or the
GPU's peak allocation), so one process measures one configuration.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from cifar_common.config import DatasetConfig

RESULT_PREFIX = "BENCH "  # the line the driver reads among the frameworks' own output


@dataclass(frozen=True)
class Settings:
    batch_size: int = 256
    warmup: int = 3
    steps: int = 10
    repeats: int = 3
    seed: int = 0


def add_settings_flags(parser: argparse.ArgumentParser, defaults: Settings = Settings()) -> None:
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(**{name: getattr(args, name) for name in asdict(Settings())})


def synthetic_batch(settings: Settings, dataset: DatasetConfig = DatasetConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One fixed batch: float32 NHWC pixels in [0, 1] and integer labels, the same for every worker."""
    rng = np.random.default_rng(settings.seed)
    side = dataset.image_size
    images = rng.random((settings.batch_size, side, side, dataset.channels), dtype=np.float32)
    labels = rng.integers(0, dataset.num_classes, settings.batch_size)
    return images, labels


def images_per_second(run_steps: Callable[[int], None], settings: Settings) -> list[float]:
    """Images/s of each timed window; `run_steps(n)` runs n steps and returns once they are done."""
    run_steps(settings.warmup)
    rates = []
    for _ in range(settings.repeats):
        started = time.perf_counter()
        run_steps(settings.steps)
        rates.append(settings.steps * settings.batch_size / (time.perf_counter() - started))
    return rates


def peak_host_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass(frozen=True)
class Result:
    name: str  # e.g. "keras train float32"
    task: str  # "train" or "inference"
    precision: str
    rates: list[float]
    peak_mib: float
    notes: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def emit(self) -> None:
        print(RESULT_PREFIX + json.dumps({**asdict(self), "images_per_second": self.median}), flush=True)


def parse_results(stdout: str) -> list[dict]:
    return [json.loads(line[len(RESULT_PREFIX):]) for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
