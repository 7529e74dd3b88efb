"""A real run stopped in the middle of an epoch (kill -9, SIGTERM, Ctrl-C) and carried on with --resume.

The resumed run must end with the uninterrupted run's history and, with the same seed on CPU,
its final weights bit for bit: the data order, the dropout masks (torch's generator state is kept
in the checkpoint) and the optimizer state all carry over.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from parity_tests.cli_runs import SMALL_RUN_ARGS, SMALL_RUN_STEPS_PER_EPOCH, only_run_dir

PORT_FIT = ("-m", "lightning_impl.fit")
# tqdm's bar for the second epoch (Lightning counts from 0), a few steps in and not at the end.
MID_SECOND_EPOCH = re.compile(r"Epoch 1: +\d+%[^|]*\|[^|]*\| ([3-9]|10)/" + str(SMALL_RUN_STEPS_PER_EPOCH))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def stop_mid_epoch(run_cli, out: Path, log: Path, signum: int) -> subprocess.CompletedProcess:
    """Start a run, send `signum` a few steps into its second epoch, wait for it to end."""
    process = run_cli(*PORT_FIT, *SMALL_RUN_ARGS, "--out", str(out), log=log)  # the progress bar is on stdout
    deadline = time.monotonic() + 300
    while not MID_SECOND_EPOCH.search(log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run never reached the middle of epoch 2:\n{log.read_text()[-2000:]}")
        time.sleep(0.02)
    process.send_signal(signum)
    process.wait(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, log.read_text(), log.read_text())


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["kill-9", "sigterm", "ctrl-c"])
def test_stopped_run_resumes_to_the_uninterrupted_result(small_port_run, run_cli, tmp_path, signum):
    """Killed, terminated or interrupted mid-epoch, then resumed: the uninterrupted run's history and
    final weights, bit for bit."""
    uninterrupted = small_port_run
    out = tmp_path / "runs"
    stopped = stop_mid_epoch(run_cli, out, tmp_path / "stderr.log", signum)
    assert stopped.returncode != 0, "an interrupted run must not exit as a success"
    run_dir = only_run_dir(out)
    # Only the finished epoch is kept: its history row and checkpoint, no results.
    assert not (run_dir / "metrics.json").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 1
    if signum != signal.SIGKILL:  # a catchable signal says how to carry on
        assert f"--resume {run_dir}" in stopped.stderr

    resumed = run_cli(*PORT_FIT, "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run_dir / "history.csv").read_text() == (uninterrupted / "history.csv").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] == 1 and metrics["epochs"] == 3
    expected, got = final_weights(uninterrupted), final_weights(run_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), f"{name} differs from the uninterrupted run"


def test_resume_refuses_a_finished_run_and_setting_flags(small_port_run, capsys):
    """--resume of a finished run, or with a setting flag, exits 2 naming why."""
    from lightning_impl import fit
    uninterrupted = small_port_run
    assert fit.main(["--resume", str(uninterrupted)]) == 2
    assert "this run finished already" in capsys.readouterr().err
    assert fit.main(["--resume", str(uninterrupted), "--epochs", "5"]) == 2
    assert "drop --epochs" in capsys.readouterr().err


def test_resume_of_a_folder_without_checkpoint_says_start_again(tmp_path, capsys):
    """A port folder of earlier code (launch.json without "framework") holding no checkpoint: exit 2, saying so."""
    from lightning_impl import fit
    run_dir = tmp_path / "lightning-dropout-x"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("training: {dropout: true}\n")
    (run_dir / "launch.json").write_text(json.dumps({"subset": None, "trainer": {"devices": "1"}}))
    assert fit.main(["--resume", str(run_dir)]) == 2
    assert (f"error: --resume {run_dir}: no checkpoints/last.ckpt; history.csv lists no epoch either: the run "
            f"stopped before its first epoch was saved; start a new run") in capsys.readouterr().err


def test_ctrl_c_lost_inside_a_finalizer_still_stops_the_run(cifar_dir, tmp_path, monkeypatch):
    """Python drops a KeyboardInterrupt raised inside a finalizer ("Exception ignored"); seen once in a
    clean-clone CI run, where a Ctrl-C'd run trained on to exit status 0. The run must stop anyway."""
    from lightning.pytorch.callbacks import Callback
    from lightning_impl import fit

    class SwallowedCtrlC(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx == 2:
                try:  # what a finalizer does to the KeyboardInterrupt the signal raises
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)
                except KeyboardInterrupt:
                    pass

    build_trainer = fit.build_trainer
    monkeypatch.setattr(fit, "build_trainer", lambda run_dir, epochs, flags, callbacks=None, **kwargs: build_trainer(
        run_dir, epochs, flags, [*(callbacks or []), SwallowedCtrlC()], **kwargs))
    with pytest.raises(SystemExit) as exited:
        fit.main(["--subset", "256", "--batch-size", "32", "--epochs", "1", "--out", str(tmp_path)])
    assert exited.value.code == 1  # Lightning's graceful shutdown after a KeyboardInterrupt
    run_dir = only_run_dir(tmp_path)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints" / "last.ckpt").exists()
