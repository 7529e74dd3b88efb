"""Train the Keras tutorial's CIFAR-10 CNN end to end and write a run folder.

    python -m keras_reference.fit --dropout
    python -m keras_reference.fit --resume runs/keras-dropout-20261129-165251   # after a crash

Steps, as in the tutorial: load CIFAR-10 and scale to [0, 1]; one-hot labels; build the
network the config describes (the tutorial's: conv 32-32 / 64-64 / 64-64 + dense 512); compile with RMSprop and categorical
cross-entropy; `fit(batch_size=256, epochs=31, validation_split=0.3)`; plot the curves; save
as `model.keras`, load it back and evaluate on the test set; plot 18 predictions and the
confusion matrix. Expect about 0.78 test accuracy for the dropout variant after 31 epochs
(measured figures: reports/README.md, the results page).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cifar_common.data import Cifar10, load_cifar10, to_unit_float
from cifar_common.errors import exits_cleanly_on_user_error
from cifar_common.rundir.atomic import write_atomically
from cifar_common.rundir.fit_command import settings_from, start_run_folder, train_and_report
from cifar_common.rundir.folder import write_results
from cifar_common.rundir.metrics_json import build_metrics, portable_command
from cifar_common.rundir.resume import Checkpoint
from cifar_common.spec.config import RunConfig
from cifar_common.spec.fit_flags import FIT_COMMANDS, fit_parser
from keras_reference.callbacks import HistoryWriter, StopOnNonFiniteLoss
from keras_reference.checkpoints import LAST, EpochCheckpoint, epochs_done, restore_seed_states, resume_checkpoint
from keras_reference.data_order import fit_data
from keras_reference.model import build_model, compile_model, parameter_count
from keras_reference.tensorboard_callback import EpochTensorBoard

FRAMEWORK = "keras"
COMMAND = FIT_COMMANDS[FRAMEWORK]


def train(config: RunConfig, data: Cifar10, run_dir: Path, verbose: int | str = "auto",
          resume: Checkpoint | None = None) -> dict:
    """The tutorial from seeding to the evaluated, reloaded model; returns metrics.json's content.

    With `resume`, the model, optimizer, history and dropout random state come from that checkpoint
    and fit carries on after its last epoch.
    """
    t = config.training
    keras.utils.set_random_seed(t.seed)  # Python, NumPy and TensorFlow
    x_train, x_test = to_unit_float(data.x_train), to_unit_float(data.x_test)
    y_train = keras.utils.to_categorical(data.y_train, config.dataset.num_classes)
    y_test = keras.utils.to_categorical(data.y_test, config.dataset.num_classes)

    if resume is None:
        model, done, rows = compile_model(build_model(config.architecture, config.dataset), t), 0, []
        (run_dir / LAST.parent).mkdir()
    else:
        model, state = resume.content
        restore_seed_states(model, state["seed_states"])
        done, rows = resume.epochs_done, state["history"]
    history = HistoryWriter(run_dir, rows)
    # StopOnNonFiniteLoss first: a bad epoch is neither recorded nor saved. The checkpoint last: it writes
    # history.csv once the epoch is saved.
    callbacks = [StopOnNonFiniteLoss(), history, EpochTensorBoard(run_dir, config.to_dict(), FRAMEWORK),
                 EpochCheckpoint(run_dir, history)]
    started = time.perf_counter()
    model.fit(**fit_data(x_train, y_train, t, first_epoch=done), epochs=t.epochs, verbose=verbose,
              callbacks=callbacks, initial_epoch=done)
    fit_seconds = time.perf_counter() - started

    model_path = run_dir / "model.keras"
    write_atomically(model_path, model.save)  # the temporary name keeps the .keras suffix Keras needs
    reloaded = keras.models.load_model(model_path)
    test_loss, test_accuracy = reloaded.evaluate(x_test, y_test, batch_size=t.batch_size, verbose=0)
    probs = reloaded.predict(x_test, batch_size=t.batch_size, verbose=0)
    confusion = tf.math.confusion_matrix(data.y_test, probs.argmax(axis=1),
                                         num_classes=config.dataset.num_classes).numpy()
    n_train = int(len(x_train) * (1 - t.validation_split))
    # TensorFlow's 0 threads means "as many as the machine has cores".
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    metrics = build_metrics(
        FRAMEWORK, config, parameter_count=parameter_count(model.trainable_weights), train_images=n_train,
        test_images=len(x_test), test_loss=test_loss, test_accuracy=test_accuracy, history_rows=history.rows,
        fit_seconds=fit_seconds, epochs_fitted=t.epochs - done, threads=threads,
        versions={"numpy": np.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        command=portable_command(COMMAND, sys.argv[1:]),
        resumed_after_epoch=done,  # fit_seconds counts the epochs after it
    )
    write_results(run_dir, history.rows, metrics, data.x_test, data.y_test, probs, confusion)
    return metrics


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = fit_parser(FRAMEWORK, __doc__.splitlines()[0]).parse_args(argv)
    settings = settings_from(args, FRAMEWORK)
    config = settings.config
    checkpoint = (resume_checkpoint(settings.resume_from, build_model(config.architecture, config.dataset))
                  if settings.resume_from is not None else None)
    data = load_cifar10(args.data_dir).subset(settings.subset)
    run_dir = settings.resume_from or start_run_folder(args.out, FRAMEWORK, settings)
    return train_and_report(lambda: train(config, data, run_dir, resume=checkpoint), FRAMEWORK, run_dir, LAST,
                            epochs_done)


if __name__ == "__main__":
    sys.exit(main())
