"""metrics.json: what a finished run measured, where and when, built the same way for both frameworks."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from cifar_common.paths import REPO_ROOT
from cifar_common.spec.config import RunConfig


def cpu_model() -> str:
    """The CPU's marketing name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(threads: int) -> dict[str, Any]:
    """When and on what a run finished: kept in the run, so a bands file rebuilt later keeps it."""
    return {
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,  # the framework's intra-op threads
        "platform": platform.platform(),
    }


def build_metrics(framework: str, config: RunConfig, *, parameter_count: int, train_images: int,
                  test_images: int, test_loss: float, test_accuracy: float,
                  history_rows: Sequence[dict[str, float]], fit_seconds: float, epochs_fitted: int,
                  threads: int, versions: dict[str, str], command: str,
                  **extra: Any) -> dict[str, Any]:
    """metrics.json's content. `epochs_fitted` counts the epochs inside `fit_seconds` (fewer on a resume)."""
    t = config.training
    return {
        "framework": framework,
        "architecture": {"name": config.architecture.name, "fingerprint": config.architecture.fingerprint},
        "variant": config.variant,
        "seed": t.seed,
        "data_order": t.data_order,
        "epochs": t.epochs,
        "parameter_count": int(parameter_count),
        "train_images": int(train_images),
        "test_images": int(test_images),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "final_val_accuracy": float(history_rows[-1]["val_accuracy"]),
        "fit_seconds": fit_seconds,
        # Validation passes are inside fit_seconds on both sides, so the figures compare.
        "train_images_per_second": train_images * epochs_fitted / fit_seconds,
        **extra,
        "provenance": provenance(threads),
        "versions": {"python": platform.python_version(), **versions},
        "command": command,
    }


def portable_argument(argument: str) -> str:
    """A command-line argument as a record keeps it: an absolute path inside the repository relative to it,
    any other absolute path by its last part (no record names the folders of the machine it ran on)."""
    flag, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
    if not equals:
        flag, value = "", argument
    if not value.startswith("/"):
        return argument
    path = Path(value).resolve()
    return f"{flag}{equals}{path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name}"


def portable_command(command: str, argv: Sequence[str]) -> str:
    """`command ARGS` (e.g. `python -m lightning_impl.fit ...`) as metrics.json and the bench records keep it."""
    return " ".join([command, *(portable_argument(argument) for argument in argv)])
