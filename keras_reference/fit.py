"""Train the Keras tutorial's CIFAR-10 CNN end to end and write a run folder.

    python -m keras_reference.fit --dropout

Steps, as in the tutorial: load CIFAR-10 and scale to [0, 1]; one-hot labels; build the
network the config describes (the tutorial's: conv 32-32 / 64-64 / 64-64 + dense 512); compile with RMSprop and categorical
cross-entropy; `fit(batch_size=256, epochs=31, validation_split=0.3)`; plot the curves; save
as `model.keras`, load it back and evaluate on the test set; plot 18 predictions and the
confusion matrix. Expect about 0.78 test accuracy for the dropout variant after 31 epochs
(measured figures are in the README).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cifar_common import runs
from cifar_common.cli import config_from_flags, fit_parser
from cifar_common.config import RunConfig
from cifar_common.data import Cifar10, load_cifar10, to_unit_float
from cifar_common.metrics import build_metrics
from cifar_common.errors import exits_cleanly_on_user_error
from cifar_common.outputs import summary_line, write_results
from keras_reference.model import build_model, compile_model, parameter_count

FRAMEWORK = "keras"


class HistoryWriter(keras.callbacks.Callback):
    """Rewrites history.csv after every epoch, so a crash keeps the epochs already done."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        runs.write_history(self.run_dir, self.rows)


def train(config: RunConfig, data: Cifar10, run_dir: Path, verbose: int | str = "auto") -> dict:
    """The tutorial from seeding to the evaluated, reloaded model; returns metrics.json's content."""
    t = config.training
    keras.utils.set_random_seed(t.seed)  # Python, NumPy and TensorFlow
    x_train, x_test = to_unit_float(data.x_train), to_unit_float(data.x_test)
    y_train = keras.utils.to_categorical(data.y_train, config.dataset.num_classes)
    y_test = keras.utils.to_categorical(data.y_test, config.dataset.num_classes)

    model = compile_model(build_model(config.architecture, config.dataset), t)
    (run_dir / "checkpoints").mkdir()
    history = HistoryWriter(run_dir)
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=t.batch_size, epochs=t.epochs, validation_split=t.validation_split,
              shuffle=True, verbose=verbose,
              callbacks=[history, keras.callbacks.ModelCheckpoint(run_dir / "checkpoints" / "last.keras")])
    fit_seconds = time.perf_counter() - started

    model_path = run_dir / "model.keras"
    runs.write_atomically(model_path, model.save)  # the temporary name keeps the .keras suffix Keras needs
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
        fit_seconds=fit_seconds, epochs_fitted=t.epochs, threads=threads,
        versions={"numpy": np.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        command=" ".join(["python -m keras_reference.fit", *sys.argv[1:]]),
    )
    write_results(run_dir, history.rows, metrics, data.x_test, data.y_test, probs, confusion)
    return metrics


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = fit_parser("python -m keras_reference.fit", __doc__.splitlines()[0]).parse_args(argv)
    config = config_from_flags(args.dropout, args.config, args.epochs, args.batch_size,
                               args.learning_rate, args.seed)
    data = load_cifar10(args.data_dir).subset(args.subset)
    run_dir = runs.new_run_dir(args.out, FRAMEWORK, config.variant, config.architecture.name)
    runs.write_config(run_dir, config.to_dict())
    runs.write_launch(run_dir, args.subset)
    metrics = train(config, data, run_dir)
    print(summary_line(metrics["test_accuracy"], run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
