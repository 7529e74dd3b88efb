"""Accuracy bands on real CIFAR-10: the port's run must land where the Keras reference's runs land.

The default test trains the port one epoch on the full data (dropout, seed 42) and checks that
epoch's training loss and accuracy against the Keras first-epoch band in reports/bands.json, one
recorded Keras run per seed. The full-budget verdicts read the recorded 31-epoch runs instead of
training: parity_tests/test_report.py, `-m full_budget`.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from cifar_common.analysis import bands
from cifar_common.rundir.folder import read_history
from scipy import stats


def test_band_is_mean_plus_minus_two_std_with_a_floor_of_one_and_a_half_points():
    wide = bands.Band(mean=0.50, std=0.02, n=3)
    assert wide.contains(0.5399) and wide.contains(0.4601) and not wide.contains(0.5401)
    narrow = bands.Band(mean=0.50, std=0.001, n=3)
    assert narrow.half_width == 0.015 and narrow.contains(0.5149) and not narrow.contains(0.5151)
    assert bands.Band(mean=0.5, std=None, n=1).half_width == 0.015


def test_overfitting_signature_needs_a_sustained_rise_not_a_one_epoch_spike():
    epochs = np.arange(31)
    loss = 1.5 * np.exp(-epochs / 8) + 0.1  # keeps falling
    overfit = 0.8 + 0.004 * (epochs - 9) ** 2  # minimum at epoch 10, then rises to 2.4
    assert bands.overfitting_signature(overfit, loss)
    assert not bands.overfitting_signature(loss + 0.2, loss)  # still falling at the end
    assert not bands.overfitting_signature(overfit, overfit)  # training loss rising with it
    spike = np.full(31, 0.65)
    spike[27], spike[-1] = 0.618, 0.709  # the port's seed-42 dropout run: one epoch 15% above the minimum
    assert not bands.overfitting_signature(spike, loss)
    assert not bands.overfitting_signature(np.where(epochs == 20, np.nan, overfit), loss)  # nan is no verdict


def test_welch_interval_matches_the_welch_satterthwaite_formula():
    port, keras = [0.70, 0.72, 0.74], [0.75, 0.76, 0.77]
    result = bands.welch_difference(port, keras)
    var_port, var_keras = np.var(port, ddof=1) / 3, np.var(keras, ddof=1) / 3
    dof = (var_port + var_keras) ** 2 / (var_port ** 2 / 2 + var_keras ** 2 / 2)
    half = stats.t.ppf(0.975, dof) * np.sqrt(var_port + var_keras)
    assert result["difference"] == pytest.approx(-0.04)
    assert result["interval"] == pytest.approx([-0.04 - half, -0.04 + half])
    assert bands.welch_difference([0.7], keras) is None


@pytest.mark.slow
def test_port_lands_in_the_keras_band_after_one_epoch(run_cli, tmp_path):
    """One epoch on the full data: the epoch's training loss and accuracy in the Keras first-epoch band."""
    finished = run_cli("-m", "lightning_impl.fit", "--dropout", "--epochs", "1", "--seed", "42", "--out", str(tmp_path),
                       timeout=1200)
    assert finished.returncode == 0, finished.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["train_images"] == 35000  # Keras's 70% split
    first_epoch = read_history(run_dir)
    groups = bands.load(section="first_epoch")
    for metric in bands.FIRST_EPOCH_METRICS:
        band = bands.first_epoch_band(groups, "keras", "dropout", metric)
        value = float(first_epoch[metric][0])
        assert band.n >= 3, f"the Keras first-epoch {metric} band needs at least 3 seeds, has {band.n}"
        assert band.contains(value), f"port first-epoch {metric} {value:.4f} outside Keras {band.describe()}"
