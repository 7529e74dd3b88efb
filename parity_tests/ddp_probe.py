"""One epoch of the port (baseline) on N CPU processes, recording what test_ddp.py checks.

    python -m parity_tests.ddp_probe --devices 2 --out DIR

Writes DIR/initial.pt and DIR/after_first_step.pt (the network's weights before and after
optimizer step 1, from rank 0) and
DIR/seen-rank<R>.json (a fingerprint of every training image rank R trained on). It runs as its
own program because Lightning's DDP launcher starts the other processes by re-running it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import lightning as L
import torch

from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.fit import TrainerFlags, build_trainer
from lightning_impl.module import CifarClassifier

SUBSET = 1024  # 716 training images: global batches of 256, 256 and 204


def fingerprint(image: torch.Tensor) -> str:
    return hashlib.blake2b(image.contiguous().numpy().tobytes(), digest_size=8).hexdigest()


class Recorder(L.Callback):
    def __init__(self, out: Path):
        self.out = out
        self.seen: list[str] = []

    def on_train_start(self, trainer: L.Trainer, module: CifarClassifier) -> None:
        if trainer.is_global_zero:
            torch.save(module.network.state_dict(), self.out / "initial.pt")

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        self.seen.extend(fingerprint(image) for image in batch[0])

    def on_train_batch_end(self, trainer: L.Trainer, module: CifarClassifier, outputs, batch, batch_idx: int) -> None:
        if batch_idx == 0 and trainer.is_global_zero:
            torch.save(module.network.state_dict(), self.out / "after_first_step.pt")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        (self.out / f"seen-rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    L.seed_everything(0, verbose=False)
    flags = TrainerFlags(devices=str(args.devices), strategy="ddp" if args.devices > 1 else "auto")
    trainer = build_trainer(args.out, epochs=1, flags=flags, callbacks=[Recorder(args.out)])
    trainer.fit(CifarClassifier(dropout=False), datamodule=Cifar10DataModule(seed=0, subset=SUBSET))


if __name__ == "__main__":
    main()
