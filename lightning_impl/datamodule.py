"""CIFAR-10 for Lightning, split and batched exactly as Keras's `fit(validation_split=0.3)` does.

The whole data set lives in memory as normalised NCHW float32 tensors; a batch is one slice of them,
taken by a list of indices (no per-image collate). Keras's split: the first 70% trains, the last 30%
validates, before any shuffling; only the training part is shuffled; the last partial batch is kept.
The training order is a `Sampler` with `set_epoch`, the loader's `sampler`, so Lightning itself sets
each epoch's order (on resume too) and the LightningModule never knows what feeds it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cifar_common.data import Cifar10, keras_validation_split, load_cifar10, to_unit_float
from cifar_common.spec.config import DATA_ORDERS, RESHUFFLE


def to_nchw_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images as the float32 NCHW tensor of Keras's `astype("float32") / 255` values."""
    return torch.from_numpy(to_unit_float(images)).permute(0, 3, 1, 2).contiguous()


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of `epoch`: a permutation of range(n) known in advance, so a resumed run replays it."""
    # SeedSequence mixes (seed, epoch), so seed 42's epoch 1 is not seed 43's epoch 0.
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))


class GlobalBatches(Sampler[torch.Tensor]):
    """This process's share of each global batch, as a tensor of indices into the images.

    With a seed, the images are visited in `epoch_permutation(n, seed, e)` order, e = the epoch given to
    `set_epoch` (`data_order="reshuffle"`) or always 0 (`"fixed"`); without one, in order. Under
    distributed training every process takes its share of each global batch (rank::world_size), so one
    optimizer step of N processes sees the same images as one process would.
    """

    def __init__(self, n: int, batch_size: int, seed: int | None = None, data_order: str = RESHUFFLE,
                 rank: int = 0, world_size: int = 1):
        if data_order not in DATA_ORDERS:
            raise ValueError(f"data_order must be one of {DATA_ORDERS}, got {data_order!r}")
        self.n, self.batch_size, self.seed, self.data_order = n, batch_size, seed, data_order
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        if self.seed is None:
            return torch.arange(self.n)
        return epoch_permutation(self.n, self.seed, self.epoch if self.data_order == RESHUFFLE else 0)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.order()
        for start in range(0, self.n, self.batch_size):
            yield order[start:start + self.batch_size][self.rank::self.world_size]


class TensorPairs(Dataset):
    """(images, labels) in memory, indexed by a tensor of indices: one read gives a whole batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def batch_loader(images: torch.Tensor, labels: torch.Tensor, batches: GlobalBatches) -> DataLoader:
    # batch_size=None: each index the sampler yields is already a batch (no collate); and Lightning
    # calls set_epoch on a loader's `sampler`, not on a batch sampler. The loader's own generator: each
    # new iterator draws a seed from it, which from torch's global one would shift the dropout masks.
    return DataLoader(TensorPairs(images, labels), sampler=batches, batch_size=None, generator=torch.Generator())


class Cifar10DataModule(L.LightningDataModule):
    """`data`: arrays already loaded (tests); otherwise `setup` reads them from `data_dir` (see
    `cifar_common.data.resolve_data_dir`), keeping the first `subset` training and test images."""

    def __init__(self, data_dir: str | Path | None = None, batch_size: int = 256,
                 validation_split: float = 0.3, seed: int = 42, subset: int | None = None,
                 data: Cifar10 | None = None, data_order: str = RESHUFFLE):
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.seed = seed
        self.subset = subset
        self.data_order = data_order
        self.data = data
        self.train_images = self.train_labels = self.val_images = self.val_labels = None
        self.test_images = self.test_labels = None

    def prepare_data(self) -> None:
        """Finds (or downloads) the folder and checks that every file reads and the subset fits; keeps
        nothing, as Lightning's contract asks (it runs on one process). `fit` calls it before making a
        run folder, so bad data fails first."""
        if self.data is None:
            load_cifar10(self.data_dir).subset(self.subset)

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is not None:
            return
        if self.data is None:  # every process needs the arrays in memory
            self.data = load_cifar10(self.data_dir).subset(self.subset)
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

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        return batch_loader(self.train_images, self.train_labels,
                            GlobalBatches(len(self.train_labels), self.batch_size, self.seed, self.data_order,
                                          rank, world))

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        return batch_loader(self.val_images, self.val_labels,
                            GlobalBatches(len(self.val_labels), self.batch_size, rank=rank, world_size=world))

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.test_images, self.test_labels, GlobalBatches(len(self.test_labels), self.batch_size))
