"""Training steps of a saved Keras model with a given optimizer and loss, recorded for comparison.

    python -m keras_reference.stepping REQUEST_DIR

REQUEST_DIR/request.json lists cases, each {"model": MODEL.keras, "inputs": NPZ (x NHWC, y labels),
"batch_size", "steps", "dtype": "float32" | "float64", "optimizer": a Keras optimizer config,
"loss": a Keras loss config or name}; REQUEST_DIR/<i>.npz gets case i's record (`record_keys`). One
process serves a whole matrix of cases: TensorFlow starts once, and never meets torch.

Each case starts from the file's weights, with a fresh optimizer (iteration 0), Dropout off (two
frameworks cannot draw the same masks) and BatchNorm in training mode. A step is Keras's own TensorFlow
`train_step` (forward in training mode, `compute_loss`, gradient, `apply_gradients`), run eagerly
(no XLA), as Keras's numerical tests run it.
"""
from __future__ import annotations

import contextlib
import copy
import json
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_reference.model import weight_arrays

# The port's slot names -> the attribute lists Keras's optimizers keep them in (one per trainable variable).
SLOT_ATTRIBUTES = {"velocity": ("_velocities",), "momentum": ("_momentums", "momentums"),
                   "average_gradient": ("_average_gradients",), "velocity_hat": ("_velocity_hats",)}


@contextlib.contextmanager
def keras_dtype(dtype: str):
    """Build Keras models and optimizers in `dtype`. Layers take their dtype from the global dtype
    policy, which is fixed from floatx the first time any layer is built: floatx alone does not switch
    a process that has built a float32 model before (the source of float64 checks that once ran in
    float32). The optimizer's learning-rate variable takes floatx."""
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _without_dtype_and_dropout(config: Any) -> Any:
    """A model config whose layers take the global dtype policy and whose Dropout rates are 0."""
    if isinstance(config, dict):
        if config.get("class_name") == "Dropout":
            config = {**config, "config": {**config["config"], "rate": 0.0}}
        return {key: _without_dtype_and_dropout(value) for key, value in config.items() if key != "dtype"}
    if isinstance(config, list):
        return [_without_dtype_and_dropout(value) for value in config]
    return config


def model_for_steps(model: keras.Model, dtype: str) -> keras.Model:
    """The same model with its weights in `dtype` and Dropout off (call inside `keras_dtype(dtype)`)."""
    stepped = type(model).from_config(_without_dtype_and_dropout(copy.deepcopy(model.get_config())))
    stepped.set_weights([np.asarray(w, dtype) for w in model.get_weights()])
    if stepped.layers[0].dtype != dtype:
        raise RuntimeError(f"the model was rebuilt in {stepped.layers[0].dtype}, not {dtype}")
    return stepped


def variable_names(model: keras.Model) -> list[str]:
    """"<layer>/<variable>" of every trainable variable, in Keras's order (the optimizer's)."""
    return [f"{layer.name}/{v.name}" for layer in model.layers for v in layer.trainable_weights]


def slot_arrays(optimizer: keras.optimizers.Optimizer, names: list[str]) -> dict[str, np.ndarray]:
    """The optimizer's slots, keyed "<layer>/<variable>/<slot>" (`names`: the trainable variables')."""
    arrays = {}
    for slot, attributes in SLOT_ATTRIBUTES.items():
        for attribute in attributes:
            values = getattr(optimizer, attribute, None) or []
            for name, value in zip(names, values):
                arrays[f"{name}/{slot}"] = np.array(value.numpy())
    return arrays


def targets(labels: np.ndarray, loss: Any, classes: int, dtype: str) -> np.ndarray:
    """Class indices for a sparse cross-entropy, one-hot rows otherwise."""
    name = loss if isinstance(loss, str) else loss.get("class_name", "")
    return labels.astype("int64") if "sparse" in name.lower() else np.eye(classes, dtype=dtype)[labels]


def train_steps(model: keras.Model, optimizer_config: Any, loss_config: Any, images: np.ndarray,
                labels: np.ndarray, batch_size: int, steps: int, dtype: str) -> list[dict[str, Any]]:
    """Per step: the loss, every gradient, every variable after the update and every optimizer slot."""
    # Everything inside the dtype policy: the compiled loss is built at its first call and takes floatx.
    with keras_dtype(dtype):
        stepped = model_for_steps(model, dtype)
        optimizer = keras.optimizers.deserialize(copy.deepcopy(optimizer_config))
        loss = keras.losses.deserialize(loss_config) if isinstance(loss_config, dict) else loss_config
        stepped.compile(optimizer=optimizer, loss=loss)
        trainable = [v for layer in stepped.layers for v in layer.trainable_weights]
        names = variable_names(stepped)
        classes = stepped.outputs[0].shape[-1]
        records = []
        for index in range(steps):
            batch = slice(index * batch_size, (index + 1) * batch_size)
            x = tf.constant(images[batch].astype(dtype))
            y = tf.constant(targets(labels[batch], loss_config, classes, dtype))
            # Keras's TensorFlow train_step, eagerly: a softmax output carries its logits in eager mode
            # too, so the loss takes the same (logits) path as in fit's graph.
            with tf.GradientTape() as tape:
                y_pred = stepped(x, training=True)
                value = stepped.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            gradients = tape.gradient(value, trainable)
            optimizer.apply_gradients(zip(gradients, trainable))
            records.append({"loss": float(value),
                            "gradients": {n: np.array(g.numpy()) for n, g in zip(names, gradients)},
                            "variables": weight_arrays(stepped),
                            "slots": slot_arrays(optimizer, names)})
    return records


def flat(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Records as flat npz keys: "<step>/loss", "<step>/<kind>/<layer>/<variable>[/<slot>]"."""
    arrays = {}
    for index, record in enumerate(records):
        arrays[f"{index}/loss"] = np.array(record["loss"])
        for kind in ("gradients", "variables", "slots"):
            arrays.update({f"{index}/{kind}/{name}": value for name, value in record[kind].items()})
    return arrays


def main(argv: list[str] | None = None) -> int:
    request_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    cases = json.loads((request_dir / "request.json").read_text())
    models: dict[str, keras.Model] = {}
    for index, case in enumerate(cases):
        if case["model"] not in models:
            models[case["model"]] = keras.models.load_model(case["model"], compile=False)
        with np.load(case["inputs"]) as inputs:
            images, labels = inputs["x"], inputs["y"]
        records = train_steps(models[case["model"]], case["optimizer"], case["loss"], images, labels,
                              case["batch_size"], case["steps"], case["dtype"])
        np.savez(request_dir / f"{index}.npz", **flat(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
