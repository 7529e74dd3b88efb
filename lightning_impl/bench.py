"""`make bench`: training and inference speed of Keras, the port under Lightning and a bare PyTorch loop.

    python -m lightning_impl.bench                       # float32 and bf16-mixed, writes bench.json
    python -m lightning_impl.bench --precisions 32-true --steps 5

Every configuration runs in its own process on the same synthetic batch (Keras never shares a
process with torch; see DESIGN.md on the import-order crash), so peak memory is per configuration.
Ratios come from one invocation on one machine: compare them, not absolute figures across runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from cifar_common.bench import Result, Settings, add_settings_flags, images_per_second, parse_results, \
    peak_host_mib, settings_from, synthetic_batch
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from lightning_impl.module import CifarClassifier
from lightning_impl.optim import KerasRMSprop

PRECISIONS = ("32-true", "bf16-mixed")
ROOT = Path(__file__).resolve().parent.parent


def batch_on(device: torch.device, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic_batch(settings)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device),
            torch.from_numpy(labels).to(device))


def finish(device: torch.device) -> None:
    """Wait for queued device work, so a window's clock covers its steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_host_mib()


def bare_worker(settings: Settings, precision: str, device: torch.device, dropout: bool) -> None:
    """The port's network and optimizer in a plain loop: the floor the Trainer is measured against."""
    module = CifarClassifier(dropout=dropout).to(device)  # its channels_last network and forward
    optimizer = KerasRMSprop(module.parameters())
    images, labels = batch_on(device, settings)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")  # noqa: E731

    def train(n: int) -> None:
        for _ in range(n):
            with autocast():
                loss = F.cross_entropy(module(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finish(device)

    def infer(n: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                with autocast():
                    torch.softmax(module(images), dim=1)
        finish(device)

    module.train()
    Result(f"bare torch train {precision}", "train", precision, images_per_second(train, settings),
           peak_mib(device)).emit()
    module.eval()
    Result(f"port inference {precision}", "inference", precision, images_per_second(infer, settings),
           peak_mib(device)).emit()


class RepeatedBatch:
    """One batch, `count` times: an iterable Lightning takes as a training dataloader (a list would be
    taken as several dataloaders)."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], count: int):
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (self.batch for _ in range(self.count))


class WindowClock(Callback):
    """Times `repeats` windows of `steps` training steps after `warmup`, as `images_per_second` does."""

    def __init__(self, settings: Settings, device: torch.device):
        self.settings, self.device = settings, device
        self.marks: list[float] = []

    def _mark_if_boundary(self, step: int) -> None:
        s = self.settings
        if step >= s.warmup and (step - s.warmup) % s.steps == 0:
            finish(self.device)
            self.marks.append(time.perf_counter())

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        self._mark_if_boundary(batch_idx)

    def on_train_end(self, trainer, module) -> None:
        self._mark_if_boundary(trainer.global_step)

    def rates(self) -> list[float]:
        s = self.settings
        return [s.steps * s.batch_size / (b - a) for a, b in zip(self.marks, self.marks[1:])]


def lightning_worker(settings: Settings, precision: str, accelerator: str, dropout: bool) -> None:
    """The port as `fit` trains it (CifarClassifier with its metrics, Lightning's Trainer), one batch repeated."""
    total = settings.warmup + settings.steps * settings.repeats
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    batch = batch_on(device, settings)  # resident on the device, as it would be on a GPU run
    clock = WindowClock(settings, device)
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=total,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[clock])
    trainer.fit(CifarClassifier(dropout=dropout), train_dataloaders=RepeatedBatch(batch, total))
    Result(f"lightning train {precision}", "train", precision, clock.rates(), peak_mib(device)).emit()


def run_worker(command: list[str], label: str) -> list[dict]:
    print(f"running {label} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    found = parse_results(result.stdout)
    if result.returncode != 0 or not found:
        raise UserError(f"{label} failed (exit status {result.returncode}):\n{result.stderr[-2000:]}")
    return found


def settings_args(settings: Settings) -> list[str]:
    return [arg for name, value in asdict(settings).items() for arg in (f"--{name.replace('_', '-')}", str(value))]


def table(results: list[dict]) -> str:
    keras = {r["task"]: r["images_per_second"] for r in results if r["name"].startswith("keras")}
    lines = [f"{'configuration':<32}{'images/s':>10}{'× Keras':>9}{'peak MiB':>10}"]
    for r in results:
        ratio = r["images_per_second"] / keras[r["task"]] if r["task"] in keras else float("nan")
        lines.append(f"{r['name']:<32}{r['images_per_second']:>10.0f}{ratio:>9.2f}{r['peak_mib']:>10.0f}")
    return "\n".join(lines)


def trainer_overhead(results: list[dict]) -> dict[str, float]:
    """Lightning's training time over the bare loop's, minus 1, per precision."""
    rate = {r["name"]: r["images_per_second"] for r in results}
    return {p: rate[f"bare torch train {p}"] / rate[f"lightning train {p}"] - 1
            for p in PRECISIONS if f"lightning train {p}" in rate and f"bare torch train {p}" in rate}


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--dropout", action="store_true", help="time the dropout variant (default: baseline)")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--worker", choices=("bare", "lightning"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="32-true", help=argparse.SUPPRESS)
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise UserError("--accelerator gpu: no CUDA device is visible to torch")
    if args.worker == "bare":
        bare_worker(settings, args.precision, torch.device("cuda" if args.accelerator == "gpu" else "cpu"),
                    args.dropout)
        return 0
    if args.worker == "lightning":
        lightning_worker(settings, args.precision, args.accelerator, args.dropout)
        return 0

    common = [*settings_args(settings), *(["--dropout"] if args.dropout else [])]
    this = [sys.executable, "-m", "lightning_impl.bench", "--accelerator", args.accelerator, *common]
    results = run_worker([sys.executable, "-m", "keras_reference.bench", *common], "keras float32")
    for precision in args.precisions:
        for worker in ("lightning", "bare"):
            results += run_worker([*this, "--worker", worker, "--precision", precision], f"{worker} {precision}")
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "accelerator": args.accelerator,
                    "gpu": torch.cuda.get_device_name(0) if args.accelerator == "gpu" else None},
        "settings": asdict(settings), "dropout": args.dropout,
        "command": " ".join(["python -m lightning_impl.bench", *(argv if argv is not None else sys.argv[1:])]),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
        "results": results,
        "lightning_overhead_over_bare": trainer_overhead(results),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    for precision, overhead in report["lightning_overhead_over_bare"].items():
        print(f"Lightning Trainer over the bare loop, {precision}: {overhead:+.1%}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
