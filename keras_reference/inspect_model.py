"""Per-layer outputs of a Keras model, in-process or as a subprocess for callers that hold torch.

    python -m keras_reference.inspect_model IMAGES.npz OUT_DIR MODEL.keras [MODEL.keras ...]

IMAGES.npz holds `images` (float32 NHWC in [0, 1]); OUT_DIR/<i>.npz, for the i-th model from 0, gets
one array per layer, keyed by the layer's name, in order (inference mode; the last layer's output
is the probabilities). Running Keras in its own process keeps TensorFlow away from torch for good.
"""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np


def layer_outputs(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Every layer's output in inference mode, keyed by layer name (a functional model's InputLayer left out)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return {layer.name: np.asarray(out) for layer, out in zip(layers, outputs)}


def main(argv: list[str] | None = None) -> int:
    images_path, out_dir, *model_paths = argv if argv is not None else sys.argv[1:]
    with np.load(images_path) as npz:
        images = npz["images"]
    for index, model_path in enumerate(model_paths):
        outputs = layer_outputs(keras.models.load_model(model_path), images)
        np.savez(Path(out_dir) / f"{index}.npz", **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
