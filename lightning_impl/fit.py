"""Train the Lightning port of the Keras CIFAR-10 CNN and write a run folder.

    python -m lightning_impl.fit --dropout

The same steps, flags and run folder as `python -m keras_reference.fit`: Keras's split, batch
size, epochs and RMSprop; per-epoch history, curves, the model (a Lightning checkpoint,
`model.ckpt`, reloaded before testing), test loss and accuracy, 18 predictions and the confusion
matrix. Expect about 0.78 test accuracy for the dropout variant after 31 epochs (README).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torchmetrics
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from cifar_common import runs
from cifar_common.cli import config_from_flags, fit_parser
from cifar_common.config import RunConfig
from cifar_common.errors import exits_cleanly_on_user_error
from cifar_common.outputs import summary_line, write_results
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.module import CifarClassifier

FRAMEWORK = "lightning"


class HistoryWriter(Callback):
    """Keras-style history: one row per epoch, rewritten after every epoch so a crash keeps it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1,
               **{key: float(metrics[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}}
        self.rows.append(row)
        if trainer.is_global_zero:
            runs.write_history(self.run_dir, self.rows)


def lightning_parser() -> argparse.ArgumentParser:
    parser = fit_parser("python -m lightning_impl.fit", __doc__.splitlines()[0])
    group = parser.add_argument_group("Lightning Trainer (same meanings as Lightning's flags)")
    group.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto, ... (default: cpu)")
    group.add_argument("--devices", default="1", help="number of devices or 'auto' (default: 1)")
    group.add_argument("--precision", default="32-true",
                       help="32-true, bf16-mixed, 16-mixed, ... (default: 32-true, as Keras trains)")
    group.add_argument("--strategy", default="auto", help="auto, ddp, ... (default: auto)")
    return parser


def build_trainer(run_dir: Path, epochs: int, accelerator: str, devices: str | int, precision: str,
                  strategy: str = "auto", callbacks: list[Callback] | None = None) -> L.Trainer:
    # checkpoints/last.ckpt after every epoch, as the Keras side keeps checkpoints/last.keras.
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0)
    return L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=devices, precision=precision,
        strategy=strategy, default_root_dir=run_dir, logger=False,
        callbacks=[checkpoints, TQDMProgressBar(), *(callbacks or [])],
        num_sanity_val_steps=0,  # Keras validates only after each epoch
        use_distributed_sampler=False,  # TensorBatches shards the batches itself
    )


def train(config: RunConfig, datamodule: Cifar10DataModule, run_dir: Path, accelerator: str = "cpu",
          devices: str | int = 1, precision: str = "32-true", strategy: str = "auto") -> dict:
    """Fit, save, reload and test; returns metrics.json's content."""
    t = config.training
    L.seed_everything(t.seed, verbose=False)
    module = CifarClassifier(dropout=t.dropout, learning_rate=t.learning_rate, rho=t.rho,
                             epsilon=t.epsilon, num_classes=config.dataset.num_classes)
    history = HistoryWriter(run_dir)
    trainer = build_trainer(run_dir, t.epochs, accelerator, devices, precision, strategy, [history])
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}

    model_path = run_dir / "model.ckpt"
    runs.write_atomically(model_path, trainer.save_checkpoint)
    reloaded = CifarClassifier.load_from_checkpoint(model_path, map_location="cpu")
    tester = L.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                       enable_progress_bar=False, enable_model_summary=False)
    results = tester.test(reloaded, datamodule=datamodule, verbose=False)[0]
    probs = torch.cat(tester.predict(reloaded, datamodule=datamodule)).float().numpy()
    confusion = reloaded.test_confusion.compute().cpu().numpy()
    n_train = len(datamodule.train_labels)
    metrics = {
        "framework": FRAMEWORK,
        "variant": t.variant,
        "seed": t.seed,
        "epochs": t.epochs,
        "parameter_count": sum(p.numel() for p in module.network.parameters() if p.requires_grad),
        "train_images": n_train,
        "test_images": len(datamodule.test_labels),
        "test_loss": float(results["test_loss"]),
        "test_accuracy": float(results["test_accuracy"]),
        "final_val_accuracy": history.rows[-1]["val_accuracy"],
        "fit_seconds": fit_seconds,
        # Validation passes are inside fit_seconds on both sides, so the figures compare.
        "train_images_per_second": n_train * t.epochs / fit_seconds,
        "accelerator": accelerator, "devices": str(devices), "precision": precision,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "lightning": L.__version__, "torchmetrics": torchmetrics.__version__},
        "command": " ".join(["python -m lightning_impl.fit", *sys.argv[1:]]),
    }
    write_results(run_dir, history.rows, metrics, datamodule.data.x_test, datamodule.data.y_test,
                  probs, confusion)
    return metrics


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = lightning_parser().parse_args(argv)
    config = config_from_flags(args.dropout, args.config, args.epochs, args.batch_size,
                               args.learning_rate, args.seed)
    t = config.training
    datamodule = Cifar10DataModule(args.data_dir, t.batch_size, t.validation_split, t.seed, args.subset)
    datamodule.prepare_data()  # bad data fails here, before a run folder exists
    run_dir = runs.new_run_dir(args.out, FRAMEWORK, t.variant)
    runs.write_config(run_dir, config.to_dict())
    metrics = train(config, datamodule, run_dir, args.accelerator, args.devices, args.precision, args.strategy)
    if metrics:
        print(summary_line(metrics["test_accuracy"], run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
