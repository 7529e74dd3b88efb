"""The torch side of `make bench`, run by `cifar_common.bench`, one worker per process (Keras runs in others):
`lightning` (the port as `fit` trains it), `bare` (its network and optimizer in a plain loop, then inference),
`machine` (torch's fp32 matmul rate and torch's FLOP count beside the hand count); `--fit`: two epochs of fit."""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LambdaCallback
from torch.utils.flop_counter import FlopCounterMode

from cifar_common.bench.timing import (MATMUL_SIDE, PRECISION, TRAIN_OVER_FORWARD, Settings, add_settings_flags,
                                       emit, emit_speed, forward_flops, images_per_second, matmul_gflops,
                                       peak_host_mib, settings_from, synthetic_batch)
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.fit_flags import positive_int
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.module import CifarClassifier
from lightning_impl.keras_optimizers import KerasRMSprop


def finish(device: torch.device) -> None:
    """Wait for queued device work, so a window's clock covers its steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_host_mib()


def batch_on(device: torch.device, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic_batch(settings)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device), torch.from_numpy(labels).to(device)


def bare(settings: Settings, device: torch.device, dropout: bool) -> None:
    """The port's network and optimizer in a plain loop (the floor the Trainer is measured against), then inference."""
    module = CifarClassifier(dropout=dropout).to(device)
    optimizer = KerasRMSprop(module.parameters())
    images, labels = batch_on(device, settings)

    def train(n: int) -> None:
        for _ in range(n):
            loss = F.cross_entropy(module(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finish(device)

    def infer(n: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                torch.softmax(module(images), dim=1)
        finish(device)

    for name, task, run_steps, mode in ((f"bare torch train {PRECISION}", "train", train, module.train),
                                        (f"port inference {PRECISION}", "inference", infer, module.eval)):
        mode()
        emit_speed(name, task, PRECISION, images_per_second(run_steps, settings), peak_mib(device),
                   torch.get_num_threads())


def lightning(settings: Settings, device: torch.device, dropout: bool) -> None:
    """The port as `fit` trains it (CifarClassifier with its metrics, Lightning's Trainer), one batch repeated."""
    total = settings.warmup + settings.steps * settings.repeats
    batch = batch_on(device, settings)  # resident on the device, as it would be on a GPU run
    marks = []  # `images_per_second`'s windows, inside Lightning's loop: after `warmup` steps, every `steps` steps

    def mark(step: int) -> None:
        if step >= settings.warmup and (step - settings.warmup) % settings.steps == 0:
            finish(device)
            marks.append(time.perf_counter())
    clock = LambdaCallback(on_train_batch_start=lambda trainer, module, batch, index: mark(index),
                           on_train_end=lambda trainer, module: mark(trainer.global_step))
    trainer = L.Trainer(accelerator=device.type.replace("cuda", "gpu"), devices=1, precision=PRECISION,
                        max_steps=total, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock])
    trainer.fit(CifarClassifier(dropout=dropout), train_dataloaders=itertools.repeat(batch, total))  # one loader
    rates = [settings.steps * settings.batch_size / (b - a) for a, b in zip(marks, marks[1:])]
    emit_speed(f"lightning train {PRECISION}", "train", PRECISION, rates, peak_mib(device), torch.get_num_threads())


def counted_flops(network: torch.nn.Module, dataset: DatasetConfig) -> dict[str, int]:
    """FLOPs of one image forward, and forward and back (`train`), as torch's counter counts them. The image
    needs no gradient: as in training, the first layer's input gradient is not computed."""
    counted = {}
    for task in ("forward", "train"):
        with FlopCounterMode(display=False) as counter:
            outputs = network(torch.zeros(1, dataset.channels, dataset.image_size, dataset.image_size))
            if task == "train":
                outputs.sum().backward()
        counted[task] = counter.get_total_flops()
    network.zero_grad(set_to_none=True)
    return counted


def machine(settings: Settings, device: torch.device, dropout: bool) -> None:
    a, b = (torch.rand(MATMUL_SIDE, MATMUL_SIDE, device=device) for _ in range(2))

    def multiply() -> None:
        torch.mm(a, b)
        finish(device)
    windows = matmul_gflops(multiply)
    blas = "cuBLAS" if device.type == "cuda" else "MKL" if torch.backends.mkl.is_available() else "unknown"
    emit("matmul", {"library": f"torch ({device.type})", "gflops": statistics.median(windows), "windows": windows,
                    "threads": torch.get_num_threads(), "blas": blas})
    network, dataset = CifarClassifier(dropout=dropout).network, DatasetConfig()
    counted = counted_flops(network, dataset)
    hand = forward_flops(network.architecture, dataset)
    emit("flops", {"counter": "torch.utils.flop_counter.FlopCounterMode",
                   "forward_per_image": counted["forward"], "train_per_image": counted["train"],
                   "hand_forward_per_image": hand, "hand_train_per_image": TRAIN_OVER_FORWARD * hand,
                   "versions": {"torch": torch.__version__, "lightning": L.__version__}})


def fit(batch_size: int, dropout: bool, data_dir: str | None, subset: int | None, epochs: int = 2) -> None:
    """`fit`'s Trainer on the real data (its split, batching and validation), without checkpoints or progress bar."""
    L.seed_everything(42, verbose=False)
    datamodule = Cifar10DataModule(data_dir, batch_size, subset=subset)
    datamodule.setup()
    starts, seconds = [], []  # Lightning validates before on_train_epoch_end: each epoch's seconds include it
    clock = LambdaCallback(on_train_epoch_start=lambda trainer, module: starts.append(time.perf_counter()),
                           on_train_epoch_end=lambda trainer, module: seconds.append(time.perf_counter() - starts[-1]))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, callbacks=[clock])
    trainer.fit(CifarClassifier(dropout=dropout), datamodule=datamodule)
    emit("epochs", {"framework": "port", "epoch_seconds": seconds, "train_images": len(datamodule.train_labels),
                    "val_images": len(datamodule.val_labels), "threads": torch.get_num_threads(),
                    "versions": {"torch": torch.__version__, "lightning": L.__version__}})


WORKERS = {"bare": bare, "lightning": lightning, "machine": machine}


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=WORKERS, default="bare")
    parser.add_argument("--fit", action="store_true", help="time two epochs of fit on the real data")
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--data-dir")
    parser.add_argument("--subset", type=positive_int)
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise UserError("--accelerator gpu: no CUDA device is visible to torch")
    if args.fit:
        fit(settings.batch_size, args.dropout, args.data_dir, args.subset)
    else:
        WORKERS[args.worker](settings, torch.device("cuda" if args.accelerator == "gpu" else "cpu"), args.dropout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
