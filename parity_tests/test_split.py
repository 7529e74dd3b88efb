"""Keras's validation split and the Lightning batches: which images, in which order, in which batch.

Every real image is recognised by an integer fingerprint of 64 of its pixels (all 60,000 differ;
`Index` checks it), so a batch's images are traced back to their indices in the arrays the reader
returns, independently of how the DataModule slices and shuffles them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_common.data import keras_validation_split
from cifar_common.errors import UserError
from cifar_common.spec.config import FIXED
from lightning_impl.datamodule import Cifar10DataModule, GlobalBatches, epoch_permutation

BATCH = 256
N_TRAIN, N_VAL, N_TEST = 35000, 15000, 10000
_rng = np.random.default_rng(20240601)
POSITIONS = np.sort(_rng.choice(3 * 32 * 32, size=64, replace=False))  # flat CHW positions
WEIGHTS = _rng.integers(0, 2**40, size=POSITIONS.size)


def fingerprints_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    """One int64 per uint8 NHWC image: 64 of its CHW pixel values, weighted by WEIGHTS (exact integers)."""
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return chw[:, POSITIONS].astype(np.int64) @ WEIGHTS


def fingerprints_float_nchw(images: torch.Tensor) -> np.ndarray:
    """The same fingerprint of float NCHW images holding value/255 (the uint8 values are recovered exactly)."""
    values = images.reshape(len(images), -1)[:, torch.from_numpy(POSITIONS)].numpy().astype(np.float64)
    return np.rint(values * 255).astype(np.int64) @ WEIGHTS


class Index:
    """Finds an image's index in a uint8 NHWC array by its fingerprint."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        fingerprints = fingerprints_uint8_nhwc(images)
        self.order = np.argsort(fingerprints)
        self.sorted = fingerprints[self.order]
        assert len(np.unique(self.sorted)) == len(images), "fingerprints must tell every image apart"

    def trace(self, images: torch.Tensor, labels: torch.Tensor, exact: bool = True) -> np.ndarray:
        """Indices of a batch's images; with `exact`, checks the batch holds those images' bits and labels."""
        fingerprints = fingerprints_float_nchw(images)
        at = np.minimum(np.searchsorted(self.sorted, fingerprints), len(self.sorted) - 1)
        assert np.array_equal(self.sorted[at], fingerprints), "a batch holds an image not in the array"
        index = self.order[at]
        if not exact:
            return index
        expected = torch.from_numpy(self.images[index].astype("float32") / 255).permute(0, 3, 1, 2)
        assert images.dtype == torch.float32 and torch.equal(images, expected)  # bit for bit
        assert torch.equal(labels, torch.from_numpy(self.labels[index]))
        return index


@pytest.fixture(scope="module")
def train_index(cifar) -> Index:
    return Index(cifar.x_train, cifar.y_train)


@pytest.fixture(scope="module")
def held_out_index(cifar) -> Index:
    return Index(cifar.x_test, cifar.y_test)


@pytest.fixture(scope="module")
def datamodule(cifar) -> Cifar10DataModule:
    dm = Cifar10DataModule(data=cifar, batch_size=BATCH)
    dm.setup()
    return dm


def traced_epoch(batches, index: Index, exact: bool = True) -> list[np.ndarray]:
    return [index.trace(images, labels, exact) for images, labels in batches]


def test_keras_validation_split_of_50000_at_0_3_is_the_last_15000():
    """keras_validation_split(50000, 0.3): train 0..34,999, validation 35,000..49,999."""
    train, val = keras_validation_split(50000, 0.3)
    assert train == range(0, 35000) and val == range(35000, 50000)


@pytest.mark.parametrize("n, split", [(50000, 0.3), (600, 0.3), (10, 0.3), (100, 0.9), (7, 0.5), (3, 0.1)])
def test_keras_validation_split_matches_keras_own_split(n, split):
    """keras_validation_split cuts where Keras's own train_validation_split cuts, rounding included."""
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split
    keras_train, keras_val = train_validation_split(np.arange(n), split)
    train, val = keras_validation_split(n, split)
    assert list(train) == np.asarray(keras_train).tolist() and list(val) == np.asarray(keras_val).tolist()


def test_a_split_that_leaves_one_side_empty_is_a_user_error():
    """keras_validation_split refuses a split with no training or no validation images, as Keras does."""
    with pytest.raises(UserError, match="validation_split=0.9"):
        keras_validation_split(1, 0.9)


def test_training_batches_hold_every_training_image_once_per_epoch(datamodule, train_index):
    """137 training batches (136 of 256, the last of 184) hold images 0..34,999 once each, shuffled."""
    batches = datamodule.train_dataloader()
    assert len(batches) == 137
    traced = traced_epoch(batches, train_index)
    assert [len(b) for b in traced] == [BATCH] * 136 + [184]
    seen = np.concatenate(traced)
    assert np.array_equal(np.sort(seen), np.arange(N_TRAIN))  # no validation image, none twice
    assert not np.array_equal(seen, np.arange(N_TRAIN))       # shuffled


def test_training_order_changes_between_epochs_and_repeats_for_the_same_seed_and_epoch(datamodule,
                                                                                      train_index):
    """set_epoch gives each epoch a new order; the same seed and epoch give the same order again."""
    first = datamodule.train_dataloader()
    first.sampler.set_epoch(0)
    epoch0 = np.concatenate(traced_epoch(first, train_index, exact=False))
    first.sampler.set_epoch(1)
    epoch1 = np.concatenate(traced_epoch(first, train_index, exact=False))
    assert np.array_equal(np.sort(epoch1), np.arange(N_TRAIN))
    assert not np.array_equal(epoch0, epoch1)
    again = datamodule.train_dataloader()  # a new loader object, same seed
    again.sampler.set_epoch(1)
    assert np.array_equal(np.concatenate(traced_epoch(again, train_index, exact=False)), epoch1)


# The first and last indices of seed 42's order of 35,000 images, as TensorBatches (the loader before
# the Sampler, commit 29799d2) drew them: recorded runs resume only if these never change.
RECORDED_ORDERS = {0: ([7810, 5094, 6244, 8574, 33170, 9452], [22390, 5625, 15215]),
                   1: ([9241, 9531, 33644, 21325, 11791, 25894], [986, 13088, 3130]),
                   30: ([13188, 3879, 18356, 26163, 25317, 22912], [34627, 17536, 28497])}


@pytest.mark.parametrize("epoch", list(RECORDED_ORDERS))
def test_epoch_orders_are_the_ones_recorded_runs_trained_in(epoch):
    """The sampler's order for (seed 42, epoch) is the permutation the loader of earlier runs drew."""
    batches = GlobalBatches(N_TRAIN, BATCH, seed=42)
    batches.set_epoch(epoch)
    order = torch.cat(list(batches))
    head, tail = RECORDED_ORDERS[epoch]
    assert order[:6].tolist() == head and order[-3:].tolist() == tail


def test_fixed_data_order_repeats_epoch_0s_permutation(cifar, train_index):
    """data_order="fixed": every epoch visits the training images in epoch 0's reshuffled order."""
    fixed = Cifar10DataModule(data=cifar.subset(1000), batch_size=BATCH, data_order=FIXED)
    fixed.setup()
    loader = fixed.train_dataloader()
    orders = []
    for epoch in (0, 1, 5):
        loader.sampler.set_epoch(epoch)
        orders.append(np.concatenate(traced_epoch(loader, train_index, exact=False)))
    assert all(np.array_equal(order, orders[0]) for order in orders)
    assert np.array_equal(orders[0], epoch_permutation(700, 42, 0).numpy())


def test_lightning_sets_each_epochs_order_itself(cifar, train_index):
    """Under a real Trainer (no hook of the module), epoch e trains in epoch_permutation(n, seed, e)."""
    import lightning as L
    from lightning_impl.module import CifarClassifier

    class Recorder(L.Callback):
        def __init__(self):
            self.seen: dict[int, list[np.ndarray]] = {}

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.seen.setdefault(trainer.current_epoch, []).append(train_index.trace(*batch, exact=False))

    small = Cifar10DataModule(data=cifar.subset(200), batch_size=64, seed=7)
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        use_distributed_sampler=False, callbacks=[recorder])
    trainer.fit(CifarClassifier(dropout=False), datamodule=small)
    for epoch in range(2):
        assert np.array_equal(np.concatenate(recorder.seen[epoch]), epoch_permutation(140, 7, epoch).numpy())


def test_validation_batches_are_the_last_15000_images_in_order(datamodule, train_index):
    """59 validation batches (58 of 256, the last of 152) hold images 35,000..49,999 in order."""
    batches = datamodule.val_dataloader()
    assert len(batches) == 59
    traced = traced_epoch(batches, train_index)
    assert [len(b) for b in traced] == [BATCH] * 58 + [152]
    assert np.array_equal(np.concatenate(traced), np.arange(N_TRAIN, N_TRAIN + N_VAL))


def test_test_batches_are_the_10000_test_images_in_order(datamodule, held_out_index):
    """40 test batches (39 of 256, the last of 16) hold the test images 0..9,999 in order."""
    batches = datamodule.test_dataloader()
    assert len(batches) == 40
    traced = traced_epoch(batches, held_out_index)
    assert [len(b) for b in traced] == [BATCH] * 39 + [16]
    assert np.array_equal(np.concatenate(traced), np.arange(N_TEST))


@pytest.mark.parametrize("n, batch_size", [(N_TRAIN, BATCH), (1001, 64)], ids=["35000-by-256", "1001-by-64"])
def test_two_ranks_share_each_global_batch_disjointly_and_completely(n, batch_size):
    """With world_size 2, each global batch splits into two disjoint shares whose union is the 1-process batch."""
    for epoch in (0, 1):
        loaders = [GlobalBatches(n, batch_size, seed=42, rank=rank, world_size=world)
                   for rank, world in ((0, 1), (0, 2), (1, 2))]
        for loader in loaders:
            loader.set_epoch(epoch)
        single, rank0, rank1 = ([index.tolist() for index in loader] for loader in loaders)
        assert len(single) == len(rank0) == len(rank1) == len(loaders[0]) == -(-n // batch_size)
        for whole, a, b in zip(single, rank0, rank1):
            assert not set(a) & set(b)
            assert sorted(a + b) == sorted(whole)
            assert abs(len(a) - len(b)) <= 1
        assert sorted(sum(single, [])) == list(range(n))
