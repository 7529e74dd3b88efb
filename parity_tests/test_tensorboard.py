"""TensorBoard logs: a Keras run and a port run overlay (same tags, epoch steps and hyperparameters), the
port never loads TensorFlow, and a resumed port run carries on in the same logs.

A Keras run and a port run (killed once its first epoch is saved, then resumed), 2 epochs on 128 real
images, in subprocesses started from an empty folder; the tests read the event files as
`tensorboard --logdir` over the folder holding both runs does, with TensorBoard's own reader.
"""
from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

from cifar_common.rundir.folder import read_history
from cifar_common.spec.config import DEFAULT_DATA_ORDER, tutorial_architecture
from parity_tests.cli_runs import only_run_dir

TAGS = {"loss", "accuracy", "val_loss", "val_accuracy"}  # history.csv's columns, on both sides
EPOCHS = [1, 2]
# A port fit that prints which of these modules its process loaded (TensorFlow must not be among them),
# and with --kill-at-second-epoch prints them and kills itself as kill -9 would, as soon as epoch 2 starts.
PORT_FIT = r"""import json, os, signal, sys
from lightning.pytorch.callbacks import Callback
import lightning_impl.fit as fit

def loaded():
    return json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras")
                             or name.startswith("torch.utils.tensorboard") or name == "tensorboardX"))

class KillAtSecondEpoch(Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            print("\n" + loaded(), flush=True)  # after the progress bar's line
            os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "--kill-at-second-epoch":
    del sys.argv[1]
    build = fit.build_trainer
    fit.build_trainer = lambda run_dir, epochs, flags, callbacks, **kwargs: build(
        run_dir, epochs, flags, [*callbacks, KillAtSecondEpoch()], **kwargs)
fit.main(sys.argv[1:])
print("\n" + loaded())"""
# The default baseline config with --epochs 2, as TensorBoard's HParams dashboard shows it.
SETTINGS = {"dataset/num_classes": 10, "dataset/image_size": 32, "dataset/channels": 3,
            "architecture/name": "tutorial", "architecture/fingerprint": tutorial_architecture(False).fingerprint,
            "training/epochs": 2, "training/batch_size": 256,
            "training/learning_rate": 0.001, "training/rho": 0.9, "training/epsilon": 1e-7,
            "training/validation_split": 0.3, "training/seed": 42}


@dataclass(frozen=True)
class Logs:
    """What TensorBoard reads from one run's tensorboard/ folder."""
    scalars: dict[str, list[tuple[int, float]]]  # tag -> (step, value), in step order
    hparams: dict[str, bool | float | str]
    metric_tags: set[str]  # the metrics the HParams dashboard lists
    event_files: int


def read_logs(events: EventAccumulator, folder: Path) -> Logs:
    scalars = {tag: sorted((event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
                           for event in events.Tensors(tag))
               for tag in events.PluginTagToContent("scalars")}
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {name: getattr(value, value.WhichOneof("kind"))
               for name, value in session.session_start_info.hparams.items()}
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    return Logs(scalars, hparams, {info.name.tag for info in experiment.metric_infos},
                len(list(folder.glob("events.out.tfevents.*"))))


@dataclass(frozen=True)
class Runs:
    keras: Path
    port: Path
    port_modules: list[list[str]]  # per port process: the modules PORT_FIT lists
    cwd: Path


@pytest.fixture(scope="module")
def runs(run_cli, tmp_path_factory) -> Runs:
    tmp = tmp_path_factory.mktemp("tensorboard")
    cwd = tmp / "cwd"  # started from here, so a log written relative to it would show
    cwd.mkdir()
    args = ["--subset", "128", "--out"]
    keras = run_cli("-m", "keras_reference.fit", "--epochs", "2", *args, str(tmp / "keras"), cwd=cwd,
                    log=tmp / "keras.log")  # runs beside the port's two runs

    def port_fit(*fit_args: str, returncode: int = 0) -> list[str]:
        result = run_cli("-c", PORT_FIT, *fit_args, cwd=cwd, timeout=300)
        assert result.returncode == returncode, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    try:
        killed = port_fit("--kill-at-second-epoch", "--epochs", "2", *args, str(tmp / "lightning"),
                          returncode=-signal.SIGKILL)
        port = only_run_dir(tmp / "lightning")
        resumed = port_fit("--resume", str(port))
        assert keras.wait(timeout=300) == 0, (tmp / "keras.log").read_text()[-3000:]
    finally:
        keras.kill()
    return Runs(only_run_dir(tmp / "keras"), port, [killed, resumed], cwd)


@pytest.fixture(scope="module")
def logs(runs) -> dict[str, Logs]:
    """As `tensorboard --logdir` over the folder holding both runs reads them: one TensorBoard run each."""
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(runs.cwd.parent))
    multiplexer.Reload()
    folders = {"keras": runs.keras / "tensorboard", "port": runs.port / "tensorboard"}
    names = {side: folder.relative_to(runs.cwd.parent).as_posix() for side, folder in folders.items()}
    assert sorted(multiplexer.Runs()) == sorted(names.values())
    return {side: read_logs(multiplexer.GetAccumulator(names[side]), folders[side]) for side in folders}


def test_both_sides_log_the_history_tags_at_epochs_1_to_n(logs):
    """Keras and the port log loss, accuracy, val_loss and val_accuracy, each at steps 1 and 2."""
    for side, found in logs.items():
        assert set(found.scalars) == TAGS, side
        assert all([step for step, _ in found.scalars[tag]] == EPOCHS for tag in TAGS), (side, found.scalars)


def test_logged_values_are_the_history_csv_values(runs, logs):
    """Each logged value is history.csv's for that epoch, to float32 (the port's second from the resumed run)."""
    for side, run_dir in (("keras", runs.keras), ("port", runs.port)):
        history = read_history(run_dir)
        for tag in TAGS:
            logged = [value for _, value in logs[side].scalars[tag]]
            assert all(math.isfinite(value) for value in logged), (side, tag, logged)
            assert logged == history[tag].astype(np.float32).tolist(), (side, tag)


def test_both_sides_record_the_run_settings_as_hyperparameters(logs):
    """The HParams dashboard gets the same settings from both sides, the framework, and the four metrics."""
    for side, framework in (("keras", "keras"), ("port", "lightning")):
        order = DEFAULT_DATA_ORDER[framework]  # each side's default, recorded with the rest
        assert logs[side].hparams == {"framework": framework, **SETTINGS, "training/data_order": order}, side
        assert logs[side].metric_tags == TAGS, side


def test_port_run_has_lightning_hparams_yaml_with_its_settings(runs):
    """Lightning's hparams.yaml sits beside the port's event files and holds config.yaml's settings."""
    hparams = yaml.safe_load((runs.port / "tensorboard" / "hparams.yaml").read_text())
    assert hparams == yaml.safe_load((runs.port / "config.yaml").read_text())


def test_port_fit_never_loads_tensorflow(runs):
    """A port fit, fresh (up to its kill) or resumed, writes its logs with tensorboardX and never loads TensorFlow."""
    assert runs.port_modules == [["tensorboardX"], ["tensorboardX"]]


def test_resumed_run_carries_on_in_the_same_folder(runs, logs):
    """The resumed process added its own event file to the run's tensorboard/; no log went anywhere else."""
    assert logs["port"].event_files == 2 and logs["keras"].event_files == 1
    stray = [path for path in runs.cwd.parent.rglob("*tfevents*") if path.parent.name != "tensorboard"]
    assert stray == [] and list(runs.cwd.iterdir()) == []
