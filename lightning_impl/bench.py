"""The torch side of `make bench`: the port's workers, each run by `cifar_common.bench` in its own process.

    python -m lightning_impl.bench ...                  # the driver, `python -m cifar_common.bench ...`
    python -m lightning_impl.bench --worker bare        # one worker: prints BENCH lines

Workers: `lightning` (the port as `fit` trains it, under Lightning's Trainer), `bare` (its network and
optimizer in a plain loop, and inference), `machine` (torch's fp32 matmul rate and the model's FLOPs),
`compiled`, `frozen` and `threads` (what was tried for speed, each against eager in one process:
torch.compile, a frozen TorchScript graph with oneDNN fusion, one thread against one per core), and
`fit` (epochs on the real data, for `make bench-fit`). Keras runs in other processes, never beside
torch (importing TensorFlow and then torch's compiler stack crashes).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cifar_common import bench
from cifar_common.bench import (Result, Settings, add_settings_flags, emit, images_per_second,
                                interleaved_images_per_second, peak_host_mib, settings_from, synthetic_batch)
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.spec.config import DatasetConfig
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.module import CifarClassifier
from lightning_impl.keras_optimizers import KerasRMSprop

WORKERS = ("bare", "lightning", "machine", "compiled", "frozen", "threads", "fit")


def build_module(dropout: bool) -> CifarClassifier:
    """The port as `fit` builds it (channels_last network, Keras's initialisation) from the default config."""
    return CifarClassifier(dropout=dropout)


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


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def train_steps(step, optimizer: torch.optim.Optimizer,
                batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, precision: str):
    """`run_steps(n)` of the plain training loop; `step` is the forward (the module, or it compiled)."""
    images, labels = batch

    def run(n: int) -> None:
        for _ in range(n):
            with autocast(device, precision):
                loss = F.cross_entropy(step(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finish(device)
    return run


def inference_steps(forward, images: torch.Tensor, device: torch.device, precision: str):
    def run(n: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                with autocast(device, precision):
                    torch.softmax(forward(images), dim=1)
        finish(device)
    return run


def bare_worker(settings: Settings, precision: str, device: torch.device, dropout: bool) -> None:
    """The port's network and optimizer in a plain loop (the floor the Trainer is measured against), then inference."""
    module = build_module(dropout).to(device)
    optimizer = KerasRMSprop(module.parameters())
    batch = batch_on(device, settings)
    module.train()
    Result(f"bare torch train {precision}", "train", precision,
           images_per_second(train_steps(module, optimizer, batch, device, precision), settings),
           peak_mib(device), torch.get_num_threads()).emit()
    module.eval()
    Result(f"port inference {precision}", "inference", precision,
           images_per_second(inference_steps(module, batch[0], device, precision), settings),
           peak_mib(device), torch.get_num_threads()).emit()


def largest_difference(eager, variant, images: torch.Tensor) -> float:
    """The largest absolute difference of the variant's logits from eager's: what it would cost in parity."""
    with torch.inference_mode():
        return (variant(images).float() - eager(images).float()).abs().max().item()


def emit_trial(rates: dict[str, list[float]], task: str, precision: str, device: torch.device,
               difference: float | None = None) -> None:
    """Rows timed in turns; the first is the default way (eager), the others are measured against it
    (with, for inference, their logits' largest difference from eager's)."""
    baseline = next(iter(rates))
    for name, windows in rates.items():
        threads = int(name.split("threads=")[1]) if "threads=" in name else torch.get_num_threads()
        notes = {} if name == baseline else {"against": baseline, **(
            {"largest_logit_difference": difference} if difference is not None else {})}
        Result(name, task, precision, windows, peak_mib(device), threads, notes).emit()


def compiled_worker(settings: Settings, precision: str, device: torch.device, dropout: bool) -> None:
    """Tried for speed: `torch.compile` (Inductor, C++ kernels on CPU), for training and for inference,
    each against eager on the same batch, the windows taking turns."""
    batch = batch_on(device, settings)
    eager, compiled = build_module(dropout).to(device), build_module(dropout).to(device)
    compiled.load_state_dict(eager.state_dict())
    forward = torch.compile(compiled)
    emit_trial(interleaved_images_per_second({
        f"bare torch train {precision} eager": train_steps(eager, KerasRMSprop(eager.parameters()), batch, device,
                                                           precision),
        f"bare torch train {precision} compiled": train_steps(forward, KerasRMSprop(compiled.parameters()), batch,
                                                              device, precision),
    }, settings), "train", precision, device)
    eager.eval()
    compiled.eval()
    compiled.load_state_dict(eager.state_dict())  # the training windows moved them apart
    emit_trial(interleaved_images_per_second({
        f"port inference {precision} eager": inference_steps(eager, batch[0], device, precision),
        f"port inference {precision} compiled": inference_steps(forward, batch[0], device, precision),
    }, settings), "inference", precision, device, largest_difference(eager, forward, batch[0]))


def frozen_worker(settings: Settings, precision: str, device: torch.device, dropout: bool) -> None:
    """Tried for speed: inference through a traced, frozen TorchScript graph, against eager. On CPU,
    `optimize_for_inference` fuses conv + bias + ReLU into oneDNN kernels, as TensorFlow's graph does."""
    module = build_module(dropout).to(device).eval()
    images = batch_on(device, settings)[0]
    as_port_does = lambda x: x.contiguous(memory_format=torch.channels_last)  # noqa: E731 (the port's forward)
    with torch.no_grad(), autocast(device, precision):
        graph = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(module.network.eval(),
                                                                                  as_port_does(images))))
    emit_trial(interleaved_images_per_second({
        f"port inference {precision} eager": inference_steps(module, images, device, precision),
        f"port inference {precision} frozen": inference_steps(lambda x: graph(as_port_does(x)), images, device,
                                                              precision),
    }, settings), "inference", precision, device,
        largest_difference(module, lambda x: graph(as_port_does(x)), images))


def with_threads(threads: int, run_steps):
    def run(n: int) -> None:
        torch.set_num_threads(threads)
        run_steps(n)
    return run


def threads_worker(settings: Settings, precision: str, device: torch.device, dropout: bool) -> None:
    """Tried for speed: torch's intra-op threads, one against one per core (torch's default), the windows
    taking turns in one process."""
    module = build_module(dropout).to(device)
    batch = batch_on(device, settings)
    train = train_steps(module, KerasRMSprop(module.parameters()), batch, device, precision)
    counts = sorted({1, torch.get_num_threads()}, reverse=True)  # the default first
    emit_trial(interleaved_images_per_second(
        {f"bare torch train {precision} threads={n}": with_threads(n, train) for n in counts}, settings),
        "train", precision, device)
    module.eval()
    infer = inference_steps(module, batch[0], device, precision)
    emit_trial(interleaved_images_per_second(
        {f"port inference {precision} threads={n}": with_threads(n, infer) for n in counts}, settings),
        "inference", precision, device)


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
    trainer.fit(build_module(dropout), train_dataloaders=RepeatedBatch(batch, total))
    Result(f"lightning train {precision}", "train", precision, clock.rates(), peak_mib(device),
           torch.get_num_threads()).emit()


# ---- the machine: matmul ceiling and the model's FLOPs --------------------------------------------------

def counted_flops(network: nn.Module, dataset: DatasetConfig, train: bool) -> int:
    """FLOPs of one image through `network` (and back, with `train`), as torch's FLOP counter counts them:
    convolutions and matrix products, 2 per multiply-add. The image needs no gradient, so the first
    layer's input gradient is not computed, as in training."""
    images = torch.zeros(1, dataset.channels, dataset.image_size, dataset.image_size)
    with FlopCounterMode(display=False) as counter:
        outputs = network(images)
        if train:
            outputs.sum().backward()
    network.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def hand_count_multiply_adds(network: nn.Module, dataset: DatasetConfig) -> int:
    """Multiply-adds of one image, from each conv and dense layer's sizes and output shape."""
    output_shapes: dict[nn.Module, torch.Size] = {}
    layers = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_hook(lambda m, _, out: output_shapes.__setitem__(m, out.shape)) for m in layers]
    with torch.no_grad():
        network(torch.zeros(1, dataset.channels, dataset.image_size, dataset.image_size))
    for hook in hooks:
        hook.remove()
    total = 0
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            if layer.groups != 1 or layer.stride != (1, 1):
                raise ValueError(f"{layer}: the hand count covers dense stride-1 convolutions only")
            total += bench.conv2d_multiply_adds(layer.in_channels, layer.out_channels, layer.kernel_size,
                                                tuple(output_shapes[layer][2:]))
        else:
            total += bench.dense_multiply_adds(layer.in_features, layer.out_features)
    return total


def machine_worker(device: torch.device, dropout: bool) -> None:
    a, b = (torch.rand(bench.MATMUL_SIDE, bench.MATMUL_SIDE, device=device) for _ in range(2))

    def multiply() -> None:
        torch.mm(a, b)
        finish(device)
    windows = bench.matmul_gflops(multiply)
    blas = "cuBLAS" if device.type == "cuda" else "MKL" if torch.backends.mkl.is_available() else "unknown"
    emit("matmul", {"library": f"torch ({device.type})", "gflops": statistics.median(windows), "windows": windows,
                    "threads": torch.get_num_threads(), "blas": blas})
    network, dataset = build_module(dropout).network, DatasetConfig()
    forward = bench.FLOP_PER_MULTIPLY_ADD * hand_count_multiply_adds(network, dataset)
    emit("flops", {"counter": "torch.utils.flop_counter.FlopCounterMode",
                   "forward_per_image": counted_flops(network, dataset, train=False),
                   "train_per_image": counted_flops(network, dataset, train=True),
                   "hand_forward_per_image": forward, "hand_train_per_image": bench.training_flops(forward),
                   "versions": {"torch": torch.__version__, "lightning": L.__version__}})


# ---- real epochs, for `make bench-fit` -------------------------------------------------------------------

class EpochClock(Callback):
    """Seconds of each training epoch, its validation included (Lightning validates before this hook)."""

    def __init__(self):
        self.started = 0.0
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def fit_worker(batch_size: int, dropout: bool, data_dir: str | None, subset: int | None, epochs: int = 2) -> None:
    """`fit`'s Trainer on the real data (its split, batching and validation), without checkpoints or progress bar."""
    L.seed_everything(42, verbose=False)
    datamodule = Cifar10DataModule(data_dir, batch_size, subset=subset)
    datamodule.setup()
    clock = EpochClock()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, callbacks=[clock])
    trainer.fit(build_module(dropout), datamodule=datamodule)
    emit("epochs", {"framework": "port", "epoch_seconds": clock.seconds, "train_images": len(datamodule.train_labels),
                    "val_images": len(datamodule.val_labels), "threads": torch.get_num_threads(),
                    "versions": {"torch": torch.__version__, "lightning": L.__version__}})


@exits_cleanly_on_user_error
def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=WORKERS, required=True)
    parser.add_argument("--precision", default="32-true", choices=bench.PRECISIONS)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--data-dir")
    parser.add_argument("--subset", type=int)
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise UserError("--accelerator gpu: no CUDA device is visible to torch")
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    if args.worker == "fit":
        fit_worker(settings.batch_size, args.dropout, args.data_dir, args.subset)
    elif args.worker == "lightning":
        lightning_worker(settings, args.precision, args.accelerator, args.dropout)
    elif args.worker == "machine":
        machine_worker(device, args.dropout)
    elif args.worker == "frozen":
        frozen_worker(settings, args.precision, device, args.dropout)
    elif args.worker == "threads":
        threads_worker(settings, args.precision, device, args.dropout)
    elif args.worker == "compiled":
        compiled_worker(settings, args.precision, device, args.dropout)
    else:
        bare_worker(settings, args.precision, device, args.dropout)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    is_worker = any(a == "--worker" or a.startswith("--worker=") for a in argv)
    return worker_main(argv) if is_worker else bench.main(argv)  # without --worker: the driver


if __name__ == "__main__":
    sys.exit(main())
