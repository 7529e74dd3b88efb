"""Faults injected for real: a disk that fills while a checkpoint is written, damaged checkpoints on
--resume, an unwritable --out, a run killed with SIGKILL between an epoch's checkpoint and its history
row; and run files made with the umask.

Each fault must end with exit status 2 and one line naming the file and the fix, no traceback, and
the last good epoch still resumable to the full history. The port runs in-process (as
test_nonfinite_loss does) with the small run's arguments (512 images, batches of 32, 3 epochs) and is
held against the shared uninterrupted run of them; the Keras runs are subprocesses, as a user starts them.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from cifar_common.rundir.atomic import write_text
from cifar_common.rundir.folder import read_history, write_history
from lightning_impl import fit as lightning_fit
from parity_tests.cli_runs import SMALL_RUN_ARGS as ARGS
from parity_tests.cli_runs import only_run_dir

RESULTS = ("metrics.json", "model.ckpt", "predictions.npz", "confusion.csv")


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def epoch_of(checkpoint: Path) -> int:
    """Epochs a checkpoint of the port has finished (Lightning counts from 0)."""
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"] + 1


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def assert_same_weights(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), f"{name} differs from the uninterrupted run"


def interrupted_copy(finished: Path, tmp_path: Path) -> Path:
    """The finished run as if it had been killed after its last checkpoint: no results yet."""
    run_dir = Path(shutil.copytree(finished, tmp_path / finished.name))
    for name in RESULTS:
        (run_dir / name).unlink()
    return run_dir


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def resume_to_the_end(run_dir: Path, finished: Path, capsys) -> str:
    """--resume exits 0 with the uninterrupted run's history and weights; returns its stderr."""
    status = lightning_fit.main(["--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert status == 0, err[-2000:]
    assert (run_dir / "history.csv").read_text() == (finished / "history.csv").read_text()
    assert_same_weights(final_weights(finished), final_weights(run_dir))
    return err


class FillsPartWay:
    """`Path.write_bytes` for the `n`-th checkpoint temporary file: half the bytes, then ENOSPC."""

    def __init__(self, n: int):
        self.n, self.calls, self.partial = n, 0, None
        self.real = Path.write_bytes

    def __call__(self, path: Path, data) -> int:
        if not (path.parent.name == "checkpoints" and path.name.startswith(".last-")):
            return self.real(path, data)
        self.calls += 1
        if self.calls < self.n:
            return self.real(path, data)
        self.real(path, bytes(data)[:len(data) // 2])
        self.partial = (path, path.stat().st_size)  # what the disk held when it filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_disk_full_during_a_checkpoint_keeps_the_last_good_one(small_port_run, tmp_path, monkeypatch, capsys):
    fills = FillsPartWay(n=2)  # epoch 2's checkpoint
    monkeypatch.setattr(Path, "write_bytes", lambda path, data: fills(path, data))  # a method, bound to path
    out = tmp_path / "runs"
    status = lightning_fit.main([*ARGS, "--out", str(out)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    run_dir = only_run_dir(out)
    assert status == 2 and "Traceback" not in err
    assert fills.partial and fills.partial[1] > 0, "the injected write never left a partial file"
    (message,) = lines(err, "error:")
    assert message.startswith(f"error: no space left on the disk of {run_dir / 'checkpoints'} while writing "
                              f"last.ckpt (it needs at least "), message
    assert message.endswith(f"; free space there; checkpoints/last.ckpt keeps epoch 1; carry on with: "
                            f"python -m lightning_impl.fit --resume {run_dir}"), message
    # The partial temporary file is gone; the good checkpoint is in place and loads.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert epoch_of(run_dir / "checkpoints" / "last.ckpt") == 1
    assert not (run_dir / "metrics.json").exists()
    resume_to_the_end(run_dir, small_port_run, capsys)


def test_disk_full_before_any_checkpoint_says_start_again(cifar_dir, tmp_path, monkeypatch, capsys):
    """No resume command when no checkpoint loads: it would only fail again."""
    fills = FillsPartWay(n=1)  # epoch 1's checkpoint
    monkeypatch.setattr(Path, "write_bytes", lambda path, data: fills(path, data))
    out = tmp_path / "runs"
    assert lightning_fit.main([*ARGS[:-1], "1", "--out", str(out)]) == 2  # --epochs 1
    err = capsys.readouterr().err
    (message,) = lines(err, "error:")
    assert message.endswith("; free space there; no epoch was saved, so the run must start again"), message
    assert "--resume" not in err and "Traceback" not in err
    assert list((only_run_dir(out) / "checkpoints").iterdir()) == []


def test_truncated_checkpoint_resumes_from_the_previous_one_with_a_warning(small_port_run, tmp_path, capsys):
    run_dir = interrupted_copy(small_port_run, tmp_path)
    truncate(run_dir / "checkpoints" / "last.ckpt")
    err = resume_to_the_end(run_dir, small_port_run, capsys)
    (warning,) = lines(err, "warning:")
    assert warning.startswith("warning: checkpoints/last.ckpt is damaged or truncated ("), warning
    assert warning.endswith("; carrying on from last.previous.ckpt (epoch 2) instead, the damaged file is kept "
                            "as last.damaged.ckpt"), warning
    assert "Traceback" not in err and not lines(err, "error:")


def test_no_loadable_checkpoint_says_the_run_must_start_again(small_port_run, tmp_path, capsys):
    run_dir = interrupted_copy(small_port_run, tmp_path)
    for name in ("last.ckpt", "last.previous.ckpt"):
        truncate(run_dir / "checkpoints" / name)
    assert lightning_fit.main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    (message,) = err.strip().splitlines()
    assert message.startswith(f"error: --resume {run_dir}: checkpoints/last.ckpt is damaged or truncated (")
    assert message.endswith("and there is no earlier good checkpoint; the run must start again (without --resume)")


def test_checkpoint_of_another_variant_is_refused(small_port_run, tmp_path, capsys):
    from cifar_common.spec.config import tutorial_architecture
    run_dir = interrupted_copy(small_port_run, tmp_path)
    settings = yaml.safe_load((run_dir / "config.yaml").read_text())
    dropout, baseline = tutorial_architecture(True), tutorial_architecture(False)
    assert settings["architecture"] == dropout.to_dict()
    settings["architecture"] = baseline.to_dict()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    assert lightning_fit.main(["--resume", str(run_dir)]) == 2
    (message,) = capsys.readouterr().err.strip().splitlines()
    assert message == (f"error: {run_dir / 'checkpoints' / 'last.ckpt'} is from another network or variant than "
                       f"config.yaml describes (it holds the network tutorial ({dropout.fingerprint}), this run has "
                       f"tutorial ({baseline.fingerprint})); start a new run for it")


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs: room for one checkpoint of the port (5.4 MB) but not a second; skipped if not mountable."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or mounted.returncode}); the "
                    f"injected ENOSPC test covers the full disk")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_really_full_disk_stops_with_the_last_good_checkpoint(cifar_dir, small_disk, capsys):
    status = lightning_fit.main([*ARGS, "--out", str(small_disk)])
    err = capsys.readouterr().err
    run_dir = only_run_dir(small_disk)
    assert status == 2 and "Traceback" not in err
    (message,) = lines(err, "error:")
    assert message.startswith(f"error: no space left on the disk of {run_dir / 'checkpoints'} while writing "
                              f"last.ckpt"), message
    assert "checkpoints/last.ckpt keeps epoch 1; carry on with" in message
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert epoch_of(run_dir / "checkpoints" / "last.ckpt") == 1
    # Resuming from it once space is free is the injected test's (same code path).


@pytest.mark.parametrize("framework, where", [("lightning", "under-a-file"), ("keras", "in-proc")])
def test_out_that_cannot_be_created_exits_2_with_one_line(tmp_path, capsys, framework, where):
    # Tests run as root, where a chmod'ed folder stays writable: use paths no one can create.
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("")
        out, reason = tmp_path / "a-file" / "runs", "Not a directory"
    else:
        out, reason = Path("/proc/no-such-process/runs"), "No such file or directory"
    if framework == "keras":
        from keras_reference import fit as keras_fit
        main = keras_fit.main
    else:
        main = lightning_fit.main
    assert main(["--subset", "16", "--epochs", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: --out: cannot create a folder in {out} ({reason}); choose a folder you can "
                            f"write to\n")


def test_run_files_get_the_umask_permissions(tmp_path):
    from lightning_impl.checkpoint_io import AtomicCheckpointIO
    old = os.umask(0o027)
    try:
        write_history(tmp_path, [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0,
                                       "val_accuracy": 0.5}])
        AtomicCheckpointIO().save_checkpoint({"epoch": 0}, tmp_path / "model.ckpt")
        os.umask(0o002)
        write_text(tmp_path / "config.yaml", "x: 1\n")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"history.csv": 0o640, "model.ckpt": 0o640, "config.yaml": 0o664}


@pytest.mark.parametrize("framework", ["lightning", "keras"])
def test_kill_between_an_epochs_checkpoint_and_its_history_row_resumes(framework, small_port_run, run_cli,
                                                                       tmp_path):
    """SIGKILL once epoch 1's checkpoint is in place and before history.csv gets its row (a helper program
    stops the run there): no file claims an epoch no checkpoint holds, and --resume ends with every epoch,
    the port's bit for bit as the uninterrupted run's."""
    from parity_tests.pause_before_history import PAUSED
    module = {"lightning": "lightning_impl.fit", "keras": "keras_reference.fit"}[framework]
    out, log = tmp_path / "runs", tmp_path / "output.log"
    process = run_cli("-m", "parity_tests.pause_before_history", module, *ARGS, "--out", str(out), log=log)
    deadline = time.monotonic() + 300
    while PAUSED not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run never reached its first history write:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    run_dir = only_run_dir(out)
    suffix = ".ckpt" if framework == "lightning" else ".keras"
    assert (run_dir / "checkpoints" / f"last{suffix}").is_file(), "the checkpoint must be written before the history"
    assert not (run_dir / "history.csv").exists()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)

    resumed = run_cli("-m", module, "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert list(read_history(run_dir)["epoch"]) == [1, 2, 3]
    assert json.loads((run_dir / "metrics.json").read_text())["resumed_after_epoch"] == 1
    if framework == "lightning":
        assert (run_dir / "history.csv").read_text() == (small_port_run / "history.csv").read_text()
        assert_same_weights(final_weights(small_port_run), final_weights(run_dir))


def test_keras_folder_whose_history_is_ahead_of_its_checkpoints_says_what_is_on_disk(tmp_path, capsys):
    """A Keras run of earlier code killed after its first history row and before its first checkpoint
    (launch.json without "framework"): --resume exits 2 naming the epoch history.csv lists and no checkpoint holds."""
    from keras_reference import fit as keras_fit
    run_dir = tmp_path / "keras-dropout-20261202-120000"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("training: {dropout: true, epochs: 2}\n")
    (run_dir / "launch.json").write_text(json.dumps({"subset": 128, "trainer": None}))
    write_history(run_dir, [{"epoch": 1, "loss": 2.2, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.2}])
    assert keras_fit.main(["--resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume {run_dir}: no checkpoints/last.keras; history.csv lists epoch 1, but no checkpoint "
        f"holds it (the run stopped while saving it); start a new run")


def test_keras_resume_uses_the_previous_checkpoint_or_says_start_again(tmp_path, capsys):
    from cifar_common.errors import UserError
    from cifar_common.rundir.resume import checkpoint_to_resume
    from cifar_common.spec.config import TrainingConfig, tutorial_architecture
    from keras_reference.checkpoints import LAST, checkpoint_loader, save_checkpoint
    from keras_reference.model import build_model, compile_model
    model = compile_model(build_model(tutorial_architecture(True)), TrainingConfig())
    rows = [{"epoch": 1, "loss": 2.0, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.2}]
    last = tmp_path / LAST
    last.parent.mkdir()
    save_checkpoint(model, last, 1, rows)
    save_checkpoint(model, last, 2, rows * 2)  # epoch 1's file is now last.previous.keras
    truncate(last)
    found = checkpoint_to_resume(tmp_path, last, checkpoint_loader(build_model(tutorial_architecture(True))))
    assert found.epochs_done == 1 and found.content[1]["history"] == rows
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("warning: checkpoints/last.keras is damaged or truncated (")
    with pytest.raises(UserError, match=r"last.previous.keras is from another network or variant than "
                                        r"config.yaml describes \(\('dropout1', 'Dropout', \(\)\) where "
                                        r"config.yaml has \('conv3', 'Conv2D'"):
        checkpoint_to_resume(tmp_path, last, checkpoint_loader(build_model(tutorial_architecture(False))))
    truncate(last.with_name("last.previous.keras"))
    (tmp_path / "checkpoints" / "last.damaged.keras").rename(last)
    with pytest.raises(UserError, match="no earlier good checkpoint; the run must start again"):
        checkpoint_to_resume(tmp_path, last, checkpoint_loader(build_model(tutorial_architecture(True))))


def test_keras_checkpoint_write_that_fills_the_disk_keeps_the_last_good_one(tmp_path, monkeypatch):
    """`model.save` writes half of last.keras's temporary file, then ENOSPC: the epoch-1 file stays and loads."""
    import keras
    from cifar_common.errors import WriteFailed
    from cifar_common.rundir.resume import with_carry_on_hint
    from cifar_common.spec.config import TrainingConfig, tutorial_architecture
    from keras_reference.checkpoints import LAST, epochs_done, read_checkpoint, save_checkpoint
    from keras_reference.fit import COMMAND
    from keras_reference.model import build_model, compile_model
    model = compile_model(build_model(tutorial_architecture(True)), TrainingConfig())
    last = tmp_path / LAST
    last.parent.mkdir()
    save_checkpoint(model, last, 1, [])
    real_save = keras.Model.save

    def fills_part_way(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)
        os.truncate(path, Path(path).stat().st_size // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(keras.Model, "save", fills_part_way)
    with pytest.raises(WriteFailed) as failed:
        save_checkpoint(model, last, 2, [])
    message = str(with_carry_on_hint(failed.value, COMMAND, tmp_path, last, epochs_done))
    assert message.startswith(f"no space left on the disk of {last.parent} while writing last.keras (it needs at "
                              f"least "), message
    assert message.endswith(f"; free space there; checkpoints/last.keras keeps epoch 1; carry on with: "
                            f"python -m keras_reference.fit --resume {tmp_path}"), message
    assert [p.name for p in last.parent.iterdir()] == ["last.keras"]
    assert read_checkpoint(last)[1]["epochs_done"] == 1
