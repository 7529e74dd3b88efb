"""Keras's side of `make bench`: the reference model's steps on one batch, or its epochs on the real data.

    KERAS_BACKEND=tensorflow python -m keras_reference.bench --steps 10 --repeats 5
    KERAS_BACKEND=torch python -m keras_reference.bench        # the same Keras code on the torch backend
    python -m keras_reference.bench --fit                      # two epochs of `fit` (make bench-fit)

Training runs Keras's own train step (`train_on_batch`, what `fit` runs per batch); inference runs
`predict_on_batch`. `--fit` runs the tutorial's `fit(validation_split=0.3)` on CIFAR-10 and times
each epoch, validation included. Run by `cifar_common.bench`, which reads the BENCH lines printed.
This module imports Keras only: on the torch backend, Keras itself brings torch.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cifar_common.bench import (Result, add_settings_flags, emit, images_per_second, peak_host_mib,  # noqa: E402
                                settings_from, synthetic_batch)
from cifar_common.data import keras_validation_split, load_cifar10, to_unit_float  # noqa: E402
from cifar_common.errors import exits_cleanly_on_user_error  # noqa: E402
from cifar_common.spec.config import TrainingConfig, tutorial_architecture  # noqa: E402
from keras_reference.model import build_model, compile_model  # noqa: E402


def backend_threads() -> int:
    """The backend's intra-op threads (TensorFlow's 0 means: from TF_NUM_INTRAOP_THREADS, else one per core)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return (tf.config.threading.get_intra_op_parallelism_threads()
                or int(os.environ.get("TF_NUM_INTRAOP_THREADS", 0)) or os.cpu_count())
    return sys.modules[keras.backend.backend()].get_num_threads()  # the module Keras loaded for its backend


def versions() -> dict[str, str]:
    return {"keras": keras.__version__, "backend": keras.backend.backend(),
            keras.backend.backend(): sys.modules[keras.backend.backend()].__version__}


def speed(settings, dropout: bool) -> None:
    keras.utils.set_random_seed(settings.seed)
    images, labels = synthetic_batch(settings)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    model = compile_model(build_model(tutorial_architecture(dropout)), TrainingConfig())

    def train(n: int) -> None:
        for _ in range(n):
            model.train_on_batch(images, one_hot)  # returns host numbers: the step has finished

    def infer(n: int) -> None:
        for _ in range(n):
            model.predict_on_batch(images)

    backend = keras.backend.backend()
    for task, run_steps in (("train", train), ("inference", infer)):
        Result(f"keras/{backend} {task} float32", task, "float32", images_per_second(run_steps, settings),
               peak_host_mib(), backend_threads(), versions()).emit()


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch, validation included (Keras validates before `on_epoch_end`)."""

    def __init__(self):
        super().__init__()
        self.started = 0.0
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def fit(batch_size: int, dropout: bool, data_dir: str | None, subset: int | None, epochs: int = 2) -> None:
    """The tutorial's `fit` (its split and shuffle), without the checkpoint callback or progress bar."""
    training = TrainingConfig(batch_size=batch_size)
    keras.utils.set_random_seed(training.seed)
    data = load_cifar10(data_dir).subset(subset)
    x_train = to_unit_float(data.x_train)
    y_train = keras.utils.to_categorical(data.y_train, 10)
    model = compile_model(build_model(tutorial_architecture(dropout)), training)
    clock = EpochClock()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=training.validation_split,
              shuffle=True, verbose=0, callbacks=[clock])
    train, val = keras_validation_split(len(x_train), training.validation_split)
    emit("epochs", {"framework": "keras", "epoch_seconds": clock.seconds, "train_images": len(train),
                    "val_images": len(val), "threads": backend_threads(), "versions": versions()})


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_reference.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--fit", action="store_true", help="time two epochs of fit on the real data")
    parser.add_argument("--data-dir")
    parser.add_argument("--subset", type=int)
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.fit:
        fit(settings.batch_size, args.dropout, args.data_dir, args.subset)
    else:
        speed(settings, args.dropout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
