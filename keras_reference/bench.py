"""Keras's side of `make bench`, run by `cifar_common.bench` on either backend (`KERAS_BACKEND`): its own
train step (`train_on_batch`, what `fit` runs per batch) and `predict_on_batch` on one batch, or with `--fit`
the tutorial's `fit(validation_split=0.3)`, each epoch timed with its validation. Imports Keras only."""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cifar_common.bench.timing import (Settings, add_settings_flags, emit, emit_speed, images_per_second,  # noqa: E402
                                       peak_host_mib, settings_from, synthetic_batch)
from cifar_common.data import keras_validation_split, load_cifar10, to_unit_float  # noqa: E402
from cifar_common.errors import exits_cleanly_on_user_error  # noqa: E402
from cifar_common.spec.config import TrainingConfig, tutorial_architecture  # noqa: E402
from cifar_common.spec.fit_flags import positive_int  # noqa: E402
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


def speed(settings: Settings, dropout: bool) -> None:
    keras.utils.set_random_seed(settings.seed)
    images, labels = synthetic_batch(settings)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    model = compile_model(build_model(tutorial_architecture(dropout)), TrainingConfig())
    steps = {"train": lambda: model.train_on_batch(images, one_hot),  # returns host numbers: the step has finished
             "inference": lambda: model.predict_on_batch(images)}
    for task, step in steps.items():
        rates = images_per_second(lambda n: [step() for _ in range(n)], settings)
        emit_speed(f"keras/{keras.backend.backend()} {task} float32", task, "float32", rates, peak_host_mib(),
                   backend_threads(), versions())


def fit(batch_size: int, dropout: bool, data_dir: str | None, subset: int | None, epochs: int = 2) -> None:
    """The tutorial's `fit` (its split and shuffle), without the checkpoint callback or progress bar."""
    training = TrainingConfig(batch_size=batch_size)
    keras.utils.set_random_seed(training.seed)
    data = load_cifar10(data_dir).subset(subset)
    x_train, y_train = to_unit_float(data.x_train), keras.utils.to_categorical(data.y_train, 10)
    model = compile_model(build_model(tutorial_architecture(dropout)), training)
    starts, seconds = [], []  # Keras validates before on_epoch_end: each epoch's seconds include it
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.append(time.perf_counter() - starts[-1]))
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=training.validation_split,
              shuffle=True, verbose=0, callbacks=[clock])
    train, val = keras_validation_split(len(x_train), training.validation_split)
    emit("epochs", {"framework": "keras", "epoch_seconds": seconds, "train_images": len(train),
                    "val_images": len(val), "threads": backend_threads(), "versions": versions()})


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_reference.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--fit", action="store_true", help="time two epochs of fit on the real data")
    parser.add_argument("--data-dir")
    parser.add_argument("--subset", type=positive_int)
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
