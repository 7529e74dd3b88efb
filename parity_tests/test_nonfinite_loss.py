"""A loss that turns nan stops training with one clear message, and the last good checkpoint stays."""
from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from cifar_common.errors import UserError
from lightning_impl.callbacks import HistoryFile, HistoryWriter, StopOnNonFiniteLoss
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.fit import TrainerFlags, build_trainer, main
from lightning_impl.module import CifarClassifier


class PoisonSecondEpoch(L.Callback):
    """Sets one weight to nan as epoch 2 starts: every loss after that is nan."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: CifarClassifier) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                module.network.dense2.weight[0, 0] = math.nan


def test_nan_in_epoch_2_stops_before_saving_it(cifar, tmp_path):
    L.seed_everything(0, verbose=False)
    datamodule = Cifar10DataModule(batch_size=64, data=cifar.subset(256))
    history = HistoryWriter(tmp_path)
    trainer = build_trainer(tmp_path, epochs=3, flags=TrainerFlags(),
                            callbacks=[StopOnNonFiniteLoss(), history, HistoryFile(history), PoisonSecondEpoch()])
    with pytest.raises(UserError, match="loss became nan in epoch 2; training stopped and "
                                        "checkpoints/last.ckpt keeps epoch 1, the last good one"):
        trainer.fit(CifarClassifier(dropout=True), datamodule=datamodule)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 0  # Lightning counts from 0: epoch 1 as printed
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    assert [row["epoch"] for row in history.rows] == [1]
    assert (tmp_path / "history.csv").read_text().count("\n") == 1 + 1


@pytest.mark.parametrize("framework", ["lightning", "keras"])
def test_diverging_run_exits_2_with_the_message(tmp_path, capsys, cifar, framework):
    """A step size of 1e30 overflows the weights in the first epoch: no checkpoint, exit status 2, and the
    same one-line message from both fit commands (Keras's in a callback like TerminateOnNaN)."""
    if framework == "keras":
        from keras_reference.fit import main as fit_main
    else:
        fit_main = main
    status = fit_main(["--subset", "256", "--epochs", "2", "--learning-rate", "1e30", "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    (message,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert message.endswith(" became nan in epoch 1; training stopped and no epoch finished with finite losses, "
                            "so there is no checkpoint. Try a smaller --learning-rate."), message
    assert "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    assert not list((run_dir / "checkpoints").glob("last*")) and not (run_dir / "metrics.json").exists()
