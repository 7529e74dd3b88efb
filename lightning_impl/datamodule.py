"""CIFAR-10 for Lightning, split and batched exactly as Keras's `fit(validation_split=0.3)` does.

The whole data set lives in memory as normalised NCHW float32 tensors; batches are slices of a
shuffled index (no per-image Dataset and collate). Keras's split: the first 70% trains, the last
30% validates, before any shuffling; only the training part is reshuffled, every epoch; the last
partial batch is kept.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch

from cifar_common.data import Cifar10, keras_validation_split, load_cifar10, to_unit_float


def to_nchw_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images as the float32 NCHW tensor of Keras's `astype("float32") / 255` values."""
    return torch.from_numpy(to_unit_float(images)).permute(0, 3, 1, 2).contiguous()


class TensorBatches:
    """Batches of (images, labels) sliced from in-memory tensors.

    With `shuffle_seed`, epoch e uses the permutation of a generator seeded from (seed, e), so an
    epoch's order is known in advance (and a resumed run replays it). Under distributed training
    every process takes its share of each global batch (rank::world_size), so one optimizer step of
    N processes sees the same images as one process would.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle_seed: int | None = None, rank: int = 0, world_size: int = 1):
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle_seed is None:
            return torch.arange(n)
        # SeedSequence mixes (seed, epoch), so seed 42's epoch 1 is not seed 43's epoch 0.
        epoch_seed = int(np.random.SeedSequence([self.shuffle_seed, self.epoch]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(epoch_seed)
        return torch.randperm(n, generator=generator)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size][self.rank::self.world_size]
            yield self.images[index], self.labels[index]


class Cifar10DataModule(L.LightningDataModule):
    def __init__(self, data_dir: str | Path | None = None, batch_size: int = 256,
                 validation_split: float = 0.3, seed: int = 42, subset: int | None = None,
                 data: Cifar10 | None = None):
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.seed = seed
        self.subset = subset
        self.data = data  # already loaded arrays, if the caller has them
        self.train_images = self.train_labels = self.val_images = self.val_labels = None
        self.test_images = self.test_labels = None
        self.train_batches: TensorBatches | None = None

    def prepare_data(self) -> None:
        if self.data is None:
            self.data = load_cifar10(self.data_dir).subset(self.subset)

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is not None:
            return
        self.prepare_data()  # every process needs the arrays in memory, not only rank 0
        images = to_nchw_tensor(self.data.x_train)
        labels = torch.from_numpy(self.data.y_train)
        train, val = keras_validation_split(len(labels), self.validation_split)
        self.train_images, self.train_labels = images[train.start:train.stop], labels[train.start:train.stop]
        self.val_images, self.val_labels = images[val.start:val.stop], labels[val.start:val.stop]
        self.test_images = to_nchw_tensor(self.data.x_test)
        self.test_labels = torch.from_numpy(self.data.y_test)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> TensorBatches:
        rank, world = self._rank_and_world()
        self.train_batches = TensorBatches(self.train_images, self.train_labels, self.batch_size,
                                           shuffle_seed=self.seed, rank=rank, world_size=world)
        return self.train_batches

    def val_dataloader(self) -> TensorBatches:
        rank, world = self._rank_and_world()
        return TensorBatches(self.val_images, self.val_labels, self.batch_size, rank=rank, world_size=world)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(self.test_images, self.test_labels, self.batch_size)

    def predict_dataloader(self) -> TensorBatches:
        return self.test_dataloader()
