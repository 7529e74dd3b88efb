"""`--data-order`: the Keras side's `reshuffle` feeds a new seeded order every epoch (the port's `fixed`
repeating one is in test_split.py), and every run records its order, runs from before the option
read as their framework's default.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cifar_common.rundir.folder import read_run
from cifar_common.spec.config import FIXED, RESHUFFLE, TrainingConfig
from parity_tests.harness import fit_visit_order

N_IMAGES, BATCH = 40, 10
N_TRAIN = 28  # validation_split 0.3 takes the last 12
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs-29799d2"


def keras_orders(data_order: str, epochs: int, first_epoch: int = 0) -> list[list[int]]:
    """The training order of each epoch keras_reference.fit's data arguments give, on indexed images."""
    import keras
    from keras_reference.data_order import fit_data
    keras.utils.set_random_seed(42)
    training = TrainingConfig(batch_size=BATCH, data_order=data_order)
    images = np.arange(N_IMAGES, dtype="float32").reshape(N_IMAGES, 1)  # each "image" is its own index
    seen = fit_visit_order(keras, {**fit_data(images, np.zeros((N_IMAGES, 1), "float32"), training, first_epoch),
                                   "epochs": first_epoch + epochs, "initial_epoch": first_epoch})
    return [seen[e * N_TRAIN:(e + 1) * N_TRAIN] for e in range(epochs)]


def test_keras_reshuffle_feeds_a_new_seeded_order_every_epoch_and_replays_it_on_resume():
    """Keras side, reshuffle: epoch e trains on the first 70% in epoch_order(28, 42, e); a run resumed
    after epoch 1 trains epoch 2 in the same order as the whole run did."""
    from keras_reference.data_order import epoch_order
    orders = keras_orders(RESHUFFLE, epochs=3)
    assert all(sorted(order) == list(range(N_TRAIN)) for order in orders)  # no validation image
    assert len({tuple(order) for order in orders}) == 3
    assert orders == [epoch_order(N_TRAIN, 42, e).tolist() for e in range(3)]
    assert keras_orders(RESHUFFLE, epochs=2, first_epoch=1) == orders[1:]


def test_keras_fixed_repeats_kerass_own_first_order():
    """Keras side, fixed (the default): the tutorial's fit call, one shuffled order in every epoch."""
    orders = keras_orders(FIXED, epochs=2)
    assert sorted(orders[0]) == list(range(N_TRAIN)) and orders[0] != list(range(N_TRAIN))
    assert orders[1] == orders[0]


@pytest.mark.parametrize("framework, order", [("keras", FIXED), ("lightning", RESHUFFLE)])
def test_runs_recorded_before_the_option_read_as_their_frameworks_default(framework, order):
    """A run folder without "data_order" (fixtures of 29799d2) reads as the order its framework used."""
    (run_dir,) = FIXTURES.glob(f"{framework}-*")
    run = read_run(run_dir)
    assert "data_order" not in run.metrics and run.data_order == order
    recorded = dataclasses.replace(run, metrics={**run.metrics, "data_order": FIXED if order == RESHUFFLE else RESHUFFLE})
    assert recorded.data_order != order  # a recorded order wins
