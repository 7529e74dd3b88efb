"""Training in lockstep: same weights, same batches in the same order, same steps; with BatchNorm,
the same moving statistics after the steps."""
import numpy as np
import pytest

from keras_reference.model import weight_arrays
from lightning_impl.convert import to_keras_arrays
from parity_tests.harness import assert_close
from parity_tests.lockstep_harness import (MOVING_STATISTICS, VARIANT_ATOL, VARIANT_BATCH, VARIANT_DTYPE,
                                           VARIANT_STEPS, lockstep)

ONE_STEP_ATOL = 1e-4  # the bound on every parameter after one step
LOSS_ATOL = 5e-3  # the bound on each step's loss over 10 steps


def test_one_training_step_matches_keras(cifar):
    """After one RMSprop step on 256 real images every parameter agrees within 1e-4."""
    *_, model, network = next(lockstep(cifar, 1))
    expected, actual = weight_arrays(model), to_keras_arrays(network)
    assert_close({k: (expected[k], actual[k]) for k in expected}, atol=ONE_STEP_ATOL, title="after one step")


def test_ten_training_steps_follow_keras_loss(cifar):
    """Over 10 steps, each step's loss agrees within 5e-3."""
    rows = [(step, k, p) for step, k, p, *_ in lockstep(cifar, 10)]
    bad = [f"step {s}: keras {k:.6f} port {p:.6f} (diff {abs(k - p):.2e})" for s, k, p in rows
           if not abs(k - p) <= LOSS_ATOL]  # NaN-safe: a NaN loss fails
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("config_name", ["variant_batchnorm", "variant_small"])
def test_variant_steps_match_keras_with_moving_statistics(config_name, cifar):
    """2 float64 steps on 32 real images each (dropout left out): every parameter, and BatchNorm's moving
    mean and variance, which the steps moved, agree with Keras's to 1e-9."""
    for step, keras_loss, port_loss, model, network in lockstep(cifar, VARIANT_STEPS, config_name, VARIANT_BATCH,
                                                               VARIANT_DTYPE):
        assert abs(keras_loss - port_loss) <= VARIANT_ATOL, (step, keras_loss, port_loss)
    expected, actual = weight_arrays(model), to_keras_arrays(network)
    assert sorted(expected) == sorted(actual)
    moving = [k for k in expected if k.endswith(MOVING_STATISTICS)]
    assert len(moving) == (14 if config_name == "variant_batchnorm" else 0)
    # Before any step they hold their initializers' values (zeros and ones, the only ones the family allows):
    # `lockstep` yields after stepping, so a reference taken inside the loop would already have moved.
    start = {k: np.zeros_like(expected[k]) if k.endswith("moving_mean") else np.ones_like(expected[k]) for k in moving}
    assert all(not np.allclose(expected[k], start[k], atol=1e-3) for k in moving), "the steps did not move them"
    assert_close({k: (expected[k], actual[k]) for k in expected}, atol=VARIANT_ATOL,
                 title=f"{config_name}, every variable after {VARIANT_STEPS} float64 steps")


@pytest.mark.report
def test_record_drift_over_100_steps(cifar, report_dir):
    """Opt-in (-m report): record how far the two sides drift over 100 lockstep steps."""
    from cifar_common.rundir.atomic import write_text
    lines = ["step,keras_loss,port_loss,max_param_diff"]
    for step, k, p, model, network in lockstep(cifar, 100):
        expected, actual = weight_arrays(model), to_keras_arrays(network)
        drift = float(np.max([np.abs(expected[n] - actual[n]).max() for n in expected]))  # NaN propagates
        lines.append(f"{step + 1},{k:.7f},{p:.7f},{drift:.3e}")
    write_text(report_dir / "drift.csv", "\n".join(lines) + "\n")
    plot_drift(report_dir / "drift.csv", report_dir / "drift.png")


def plot_drift(csv_path, png_path) -> None:
    """Largest parameter difference (log scale) and both losses against the lockstep step."""
    import matplotlib.pyplot as plt

    from cifar_common.plots import save_figure
    data = np.genfromtxt(csv_path, delimiter=",", names=True)
    fig, (drift, losses) = plt.subplots(1, 2, figsize=(11, 4))
    drift.semilogy(data["step"], data["max_param_diff"])
    drift.set(xlabel="step", ylabel="largest |keras - port| parameter", title="Parameter drift, float32, no dropout")
    drift.grid(True, which="both", alpha=0.4)
    losses.plot(data["step"], data["keras_loss"], label="Keras")
    losses.plot(data["step"], data["port_loss"], "--", label="Lightning port")
    losses.set(xlabel="step", ylabel="training loss", title="Loss of each step")
    losses.grid(True)
    losses.legend()
    save_figure(fig, png_path)
