"""Training in lockstep: same weights, same batches in the same order, same steps."""
import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cifar_common.data import to_unit_float
from keras_reference.model import compile_model, weight_arrays
from cifar_common.config import TrainingConfig
from lightning_impl.convert import to_keras_arrays
from lightning_impl.optim import KerasRMSprop
from parity_tests.harness import assert_close, keras_and_port, nchw

ONE_STEP_ATOL = 1e-4  # the bound on every parameter after one step
LOSS_ATOL = 5e-3  # the bound on each step's loss over 10 steps
BATCH = 256


def lockstep(cifar, steps: int):
    """Train both sides on the first `steps` training batches; yield (step, keras loss, port loss, model, network)."""
    model, network = keras_and_port(dropout=False)
    compile_model(model, TrainingConfig())
    optimizer = KerasRMSprop(network.parameters(), lr=0.001, rho=0.9, epsilon=1e-7)
    network.train()
    for step in range(steps):
        images = to_unit_float(cifar.x_train[step * BATCH:(step + 1) * BATCH])
        labels = cifar.y_train[step * BATCH:(step + 1) * BATCH]
        keras_loss = float(model.train_on_batch(images, keras.utils.to_categorical(labels, 10))[0])
        optimizer.zero_grad()
        loss = F.cross_entropy(network(nchw(images)), torch.from_numpy(labels))
        loss.backward()
        optimizer.step()
        yield step, keras_loss, loss.item(), model, network


def test_one_training_step_matches_keras(cifar):
    """After one RMSprop step on 256 real images every parameter agrees within 1e-4."""
    *_, model, network = next(lockstep(cifar, 1))
    expected, actual = weight_arrays(model), to_keras_arrays(network)
    assert_close({k: (expected[k], actual[k]) for k in expected}, atol=ONE_STEP_ATOL, title="after one step")


def test_ten_training_steps_follow_keras_loss(cifar):
    """Over 10 steps, each step's loss agrees within 5e-3."""
    rows = [(step, k, p) for step, k, p, *_ in lockstep(cifar, 10)]
    bad = [f"step {s}: keras {k:.6f} port {p:.6f} (diff {abs(k - p):.2e})" for s, k, p in rows
           if abs(k - p) > LOSS_ATOL]
    assert not bad, "\n".join(bad)


@pytest.mark.report
def test_record_drift_over_100_steps(cifar, report_dir):
    """Opt-in (-m report): record how far the two sides drift over 100 lockstep steps."""
    from cifar_common.runs import write_text
    lines = ["step,keras_loss,port_loss,max_param_diff"]
    for step, k, p, model, network in lockstep(cifar, 100):
        expected, actual = weight_arrays(model), to_keras_arrays(network)
        drift = max(float(np.abs(expected[n] - actual[n]).max()) for n in expected)
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
