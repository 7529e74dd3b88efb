"""keras2lightning (`python -m lightning_impl.export`): the written module imports neither Keras nor the
project, gives Keras's probabilities, passes check_parity --port, is stable and formatted, and replaces
nothing without --force."""
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
from keras_reference.model import build_model, weight_arrays
from lightning_impl import check_parity, export
from lightning_impl.convert import to_keras_arrays
from lightning_impl.emitted import AsPort, load_network
from parity_tests.graphs import random_graphs, resnet_like
from parity_tests.harness import ARCHITECTURES, assert_close, keras_and_port, randomise_batchnorm

PROBABILITY_ATOL = 1e-5  # the bound; measured at most 1.2e-7 (docs/export.md)
GRAPH_SEED = 2028  # the seed test_graph checks covers every graph layer
IMAGES = 64

# Run in a fresh interpreter: Keras, TensorFlow and this project cannot be imported there (the project is
# installed editable, so a path alone would not hide it), then each written module is imported from its
# file, its weights loaded, and its probabilities saved.
WITHOUT_KERAS_OR_PROJECT = """
import importlib.util, json, sys
for name in ("keras", "tensorflow", "tf_keras", "cifar_common", "lightning_impl", "keras_reference", "parity_tests"):
    sys.modules[name] = None
import numpy as np, torch
from safetensors.torch import load_file
images_path, out_dir, *modules = sys.argv[1:]
images = torch.from_numpy(np.load(images_path)).permute(0, 3, 1, 2).contiguous()
for index, (code, class_name) in enumerate(json.loads(m) for m in modules):
    spec = importlib.util.spec_from_file_location(f"written{index}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = getattr(module, class_name)()
    network.load_state_dict(load_file(code[:-3] + ".safetensors"))
    network.eval()
    with torch.no_grad():
        np.save(f"{out_dir}/{index}.npy", torch.softmax(network(images), dim=1).numpy())
"""


def written_probabilities(modules: list[tuple[Path, str]], images: np.ndarray, tmp_path: Path) -> list[np.ndarray]:
    """Each written module's probabilities, computed in one process without Keras or the project."""
    np.save(tmp_path / "images.npy", images)
    args = [json.dumps([str(code), name]) for code, name in modules]
    result = subprocess.run([sys.executable, "-c", WITHOUT_KERAS_OR_PROJECT, str(tmp_path / "images.npy"),
                             str(tmp_path), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return [np.load(tmp_path / f"{index}.npy") for index in range(len(modules))]


def saved_models(tmp_path: Path) -> dict[str, tuple[keras.Model, Path]]:
    """Every config's network, random family graphs and the ResNet-like model, saved by Keras with
    BatchNorm's variables drawn at random."""
    models = {name: keras_and_port(name)[0] for name in ARCHITECTURES}
    for architecture in random_graphs(GRAPH_SEED, 3):
        models[architecture.name] = build_model(architecture)
    models["resnet_like"] = resnet_like()
    saved = {}
    for index, (name, model) in enumerate(models.items()):
        randomise_batchnorm(model, index)
        model.save(tmp_path / f"{name}.keras")
        saved[name] = model, tmp_path / f"{name}.keras"
    return saved


def test_written_modules_give_keras_probabilities_without_keras_or_the_project(test_images, tmp_path):
    """Every config, random graphs (residual and concatenated branches, strides, BatchNorm, depthwise) and a
    ResNet-like model: exported, imported in a process where neither Keras nor the project can be, they
    give Keras's probabilities on real CIFAR-10 images."""
    images = test_images[:IMAGES]
    saved = saved_models(tmp_path)
    modules = []
    for name, (_, path) in saved.items():
        class_name = export.camel_case(name)  # the tutorial's two networks share the Keras name "tutorial"
        assert export.main([str(path), "--out", str(tmp_path / "out"), "--name", class_name]) == 0
        modules.append((tmp_path / "out" / f"{export.snake_case(class_name)}.py", class_name))
    written = written_probabilities(modules, images, tmp_path)
    for (name, (model, _)), probabilities in zip(saved.items(), written):
        expected = model.predict(images, verbose=0)
        difference = float(np.abs(probabilities - expected).max())
        assert difference <= PROBABILITY_ATOL, f"{name}: probabilities differ by {difference} (> {PROBABILITY_ATOL})"


def test_resnet_like_model_passes_check_parity_port(tmp_path, capsys):
    """The issue's model (residual Add blocks, a projection shortcut, a Concatenate branch, global pooling),
    written out, passes check_parity --port: every attribute of the written network and the probabilities."""
    model = resnet_like()
    randomise_batchnorm(model, 0)
    model.save(tmp_path / "resnet.keras")
    assert export.main([str(tmp_path / "resnet.keras"), "--out", str(tmp_path / "out"), "--name", "ResNetLike"]) == 0
    capsys.readouterr()
    code = tmp_path / "out" / "res_net_like.py"
    status = check_parity.main([str(tmp_path / "resnet.keras"), "--images", str(IMAGES), "--port", str(code)])
    out = capsys.readouterr().out
    assert status == 0 and "verdict: PASS" in out and "against ResNetLike written out" in out, out
    for layer in model.layers:
        if type(layer).__name__ not in ("InputLayer", "Add", "Concatenate"):
            assert f"\n{layer.name} " in out, f"{layer.name} has no row:\n{out}"
    # Seen as the port, the written network holds exactly Keras's variables (the training checks rely on it).
    written = AsPort(load_network(code), check_parity.port_for(tmp_path / "resnet.keras"))
    assert_close({key: (value, to_keras_arrays(written)[key]) for key, value in weight_arrays(model).items()}, 0.0)


def test_written_module_is_stable_formatted_and_read_like_code(tmp_path):
    """The same file gives the same bytes twice; `ruff format` leaves it as it is; branches are named."""
    model = resnet_like()
    randomise_batchnorm(model, 0)
    model.save(tmp_path / "resnet.keras")
    for out in ("a", "b"):
        assert export.main([str(tmp_path / "resnet.keras"), "--out", str(tmp_path / out)]) == 0
    for suffix in (".py", ".safetensors"):
        first, second = (tmp_path / out / f"resnet_like{suffix}" for out in ("a", "b"))
        assert first.read_bytes() == second.read_bytes(), suffix
    code = tmp_path / "a" / "resnet_like.py"
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--line-length", "120", str(code)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = code.read_text()
    # Shortcuts as a person writes them (Keras numbers default names per process: conv2d, conv2d_12, ...)
    assert re.search(r"\n        x = x \+ conv2d(_\d+)?\n", text), text
    assert re.search(r"\n        x = batch_normalization(_\d+)? \+ x\n", text), text
    assert "import keras" not in text and "cifar_common" not in text and "lightning_impl" not in text


def test_existing_files_are_replaced_only_with_force(tmp_path, capsys):
    """A second export into the same folder exits 2 naming the file and leaves it as it was; --force replaces it."""
    model, _ = keras_and_port("baseline")
    model.save(tmp_path / "model.keras")
    out = tmp_path / "out"
    assert export.main([str(tmp_path / "model.keras"), "--out", str(out), "--name", "Tutorial"]) == 0
    (out / "tutorial.py").write_text("edited")
    capsys.readouterr()
    assert export.main([str(tmp_path / "model.keras"), "--out", str(out), "--name", "Tutorial"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out / "tutorial.py") in err[0] and "--force" in err[0], err
    assert (out / "tutorial.py").read_text() == "edited"
    assert export.main([str(tmp_path / "model.keras"), "--out", str(out), "--name", "Tutorial", "--force"]) == 0
    assert "class Tutorial(nn.Module)" in (out / "tutorial.py").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["tutorial.py", "tutorial.safetensors"]  # no temporary left


def test_unusable_class_name_exits_2(tmp_path, capsys):
    """--name must be a class name the written code can use."""
    model, _ = keras_and_port("baseline")
    model.save(tmp_path / "model.keras")
    for name in ("with space", "class", "x"):
        assert export.main([str(tmp_path / "model.keras"), "--out", str(tmp_path), "--name", name]) == 2
        assert f"--name {name!r}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
