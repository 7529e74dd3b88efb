"""Turn a `.keras` file into a config with its architecture, to train that network on both sides.

    python -m cifar_common.spec.describe_keras MODEL.keras [--name NAME] [--out my_variant.yaml]

Reads the file's `config.json` (no TensorFlow), refuses a model outside the family (exit 2, naming
the layer and option), and writes a YAML config: the file's architecture in the explicit form,
with the file's layer names (a functional model's layers with their `inputs`), and the tutorial's
dataset and training settings (configs/baseline.yaml). Then: `python -m lightning_impl.fit --config my_variant.yaml` and
`python -m keras_reference.fit --config my_variant.yaml`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.rundir.atomic import write_text
from cifar_common.spec.config import default_config_path, load_config, validate
from cifar_common.spec.keras_config import architecture_of_keras_file


def describe_file(model_path: Path, name: str | None = None) -> str:
    """The YAML text of a config holding the file's architecture."""
    architecture, input_shape = architecture_of_keras_file(model_path)
    if name is not None:
        architecture = dataclasses.replace(architecture, name=name)
    config = dataclasses.replace(load_config(default_config_path(dropout=False)), architecture=architecture)
    if input_shape != (config.dataset.image_size, config.dataset.image_size, config.dataset.channels):
        raise UserError(f"{model_path}: input shape {input_shape}; the CIFAR-10 pipeline feeds (32, 32, 3)")
    validate(config, str(model_path))
    header = (f"# The architecture of {model_path.name} ({architecture.fingerprint}), with the tutorial's "
              f"dataset and training settings.\n# Written by python -m cifar_common.spec.describe_keras.\n")
    return header + yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar_common.spec.describe_keras",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a Keras 3 model (Sequential or functional) saved as .keras")
    parser.add_argument("--name", default=None,
                        help="the architecture's name in run folders and bands (default: the model's name)")
    parser.add_argument("--out", type=Path, default=None, help="the YAML file to write (default: print it)")
    args = parser.parse_args(argv)
    text = describe_file(args.model, args.name)
    if args.out is None:
        print(text, end="")
    else:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
