"""The order Keras's `fit` visits the training images in: `--data-order fixed` or `reshuffle`.

`fixed` (the default, as the recorded runs were made) is `fit(shuffle=True, validation_split=...)` as the
tutorial calls it: seeded Keras 3 on TensorFlow repeats its first epoch's order in every epoch
(`parity_tests/test_reference_behaviour.py`). No `fit` call gives the new order per epoch that Keras 2, the tutorial's Keras,
drew; so `reshuffle` feeds its own: epoch e visits the training images in `epoch_order(n, seed, e)`,
known in advance, so a resumed run replays it.
"""
from __future__ import annotations

import math

from typing import Any

import keras
import numpy as np

from cifar_common.data import keras_validation_split
from cifar_common.spec.config import FIXED, TrainingConfig


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of `epoch` (counted from 0): a permutation of range(n) from (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochShuffled(keras.utils.PyDataset):
    """(images, labels) batches of `batch_size` (the last one partial, as Keras's), in a new seeded order
    each epoch. `first_epoch`: where fit starts (its `initial_epoch` when a run is resumed)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0):
        super().__init__()  # one worker, no processes: batches come in order
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.next_epoch = first_epoch
        # Keras reads a few batches for their shapes before the first epoch begins.
        self.order = epoch_order(len(x), seed, first_epoch)

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def on_epoch_begin(self) -> None:
        # Called as each epoch's iteration starts, before its first batch is read.
        self.order = epoch_order(len(self.x), self.seed, self.next_epoch)
        self.next_epoch += 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[batch], self.y[batch]


def fit_data(x: np.ndarray, y: np.ndarray, training: TrainingConfig, first_epoch: int = 0) -> dict[str, Any]:
    """`fit`'s data arguments for the run's data order: the training and validation images and batching."""
    if training.data_order == FIXED:  # the tutorial's call; Keras's own split and shuffle
        return {"x": x, "y": y, "batch_size": training.batch_size, "validation_split": training.validation_split,
                "shuffle": True}
    train, val = keras_validation_split(len(x), training.validation_split)  # what validation_split takes
    batches = EpochShuffled(x[train.start:train.stop], y[train.start:train.stop], training.batch_size,
                            training.seed, first_epoch)
    # shuffle=False: Keras would otherwise also shuffle the order of a PyDataset's batches.
    return {"x": batches, "validation_data": (x[val.start:val.stop], y[val.start:val.stop]),
            "validation_batch_size": training.batch_size, "shuffle": False}
