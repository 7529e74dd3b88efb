"""Keras's side of `make bench`: training and inference steps of the reference model on one batch.

    python -m keras_reference.bench --steps 10 --repeats 3

Training runs Keras's own compiled train step (`train_on_batch`, what `fit` runs per batch);
inference runs `predict_on_batch`. Prints one result line per task for `lightning_impl.bench`.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cifar_common.bench import Result, add_settings_flags, images_per_second, peak_host_mib, settings_from, \
    synthetic_batch  # noqa: E402
from cifar_common.config import TrainingConfig, tutorial_architecture  # noqa: E402
from keras_reference.model import build_model, compile_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dropout", action="store_true")
    add_settings_flags(parser)
    args = parser.parse_args()
    settings = settings_from(args)
    keras.utils.set_random_seed(settings.seed)
    images, labels = synthetic_batch(settings)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    model = compile_model(build_model(tutorial_architecture(args.dropout)), TrainingConfig())

    def train(n: int) -> None:
        for _ in range(n):
            model.train_on_batch(images, one_hot)  # returns host numbers: the step has finished

    def infer(n: int) -> None:
        for _ in range(n):
            model.predict_on_batch(images)

    for task, run_steps in (("train", train), ("inference", infer)):
        rates = images_per_second(run_steps, settings)
        Result(f"keras {task} float32", task, "float32", rates, peak_host_mib(),
               {"keras": keras.__version__, "backend": keras.backend.backend()}).emit()


if __name__ == "__main__":
    main()
