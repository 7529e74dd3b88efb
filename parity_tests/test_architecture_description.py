"""The architecture description: one YAML section that both builders walk, read from configs, old run
folders and `.keras` files alike, with a name and a fingerprint that runs record."""
import dataclasses
import json

import pytest
import yaml

from cifar_common.errors import UserError
from cifar_common.spec import describe_keras
from cifar_common.paths import CONFIG_DIR, REPO_ROOT
from cifar_common.spec.config import load_config
from cifar_common.spec.keras_config import architecture_of_keras_file
from cifar_common.spec.layers import Architecture
from cifar_common.spec.yaml_form import parse_architecture
from keras_reference.model import build_model
from parity_tests.harness import ARCHITECTURES, architecture

TUTORIAL_NAMES = ["conv1", "conv2", "pool1", "dropout1", "conv3", "conv4", "pool2", "dropout2", "conv5", "conv6",
                  "pool3", "dropout3", "flatten", "dense1", "dropout4", "dense2"]


def test_tutorial_configs_describe_the_tutorial_network():
    """configs/dropout.yaml expands to the tutorial's layers and names; baseline.yaml to the same without dropout."""
    dropout, baseline = architecture("dropout"), architecture("baseline")
    assert [layer.name for layer in dropout.layers] == TUTORIAL_NAMES
    assert [layer.name for layer in baseline.layers] == [n for n in TUTORIAL_NAMES if not n.startswith("dropout")]
    convs = [layer for layer in dropout.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 64, 64]
    assert {(c.kernel_size, c.strides, c.padding, c.activation) for c in convs} == {((3, 3), (1, 1), "same", "relu")}
    assert (dropout.name, dropout.variant, baseline.variant) == ("tutorial", "dropout", "baseline")


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_explicit_form_round_trips_with_the_same_fingerprint(config_name):
    """config.yaml's explicit form reads back to the same architecture, names and fingerprint included."""
    described = architecture(config_name)
    again = parse_architecture(yaml.safe_load(yaml.safe_dump(described.to_dict())), "round trip")
    assert again == described and again.fingerprint == described.fingerprint


def test_fingerprint_ignores_names_and_sees_every_option():
    """Renamed layers keep the fingerprint; one changed option (a dropout rate) changes it."""
    described = architecture("dropout")
    renamed = Architecture("other", tuple(dataclasses.replace(l, name=f"x{i}") for i, l in enumerate(described.layers)))
    assert renamed.fingerprint == described.fingerprint
    changed = Architecture("tutorial", tuple(dataclasses.replace(l, rate=0.3) if l.name == "dropout4" else l
                                             for l in described.layers))
    assert changed.fingerprint != described.fingerprint
    assert len({architecture(name).fingerprint for name in ARCHITECTURES}) == len(ARCHITECTURES)


def test_run_folders_written_before_architectures_load_as_the_tutorial():
    """Every recorded run whose config.yaml predates architectures (no architecture section, legacy
    training.dropout) loads as the tutorial's network; runs recorded since carry their own section."""
    recorded = {path: yaml.safe_load(path.read_text())
                for path in (REPO_ROOT / "reports" / "runs").glob("*/config.yaml")}
    legacy = {path: raw for path, raw in recorded.items() if "architecture" not in raw}
    assert legacy, "no recorded run predates the architecture section: this check has nothing left to read"
    for path, raw in legacy.items():
        expected = architecture("dropout" if raw["training"]["dropout"] else "baseline")
        assert load_config(path).architecture == expected, path


def test_dropout_flag_must_agree_with_the_architecture(tmp_path):
    """--dropout (training.dropout) with an architecture that has no Dropout layer is refused, naming both."""
    text = (CONFIG_DIR / "variant_small.yaml").read_text().replace("dropout: 0.3", "dropout: 0.0")
    path = tmp_path / "no_dropout.yaml"
    path.write_text(text)
    assert load_config(path).variant == "baseline"
    with pytest.raises(UserError, match="dropout requested .* architecture 'small' has no Dropout layers"):
        load_config(path, dropout=True)


@pytest.mark.parametrize("section, fragment", [
    ({"conv_blocks": [{"filters": 8, "pool": "median"}], "classes": 10}, "pool 'median' is not supported"),
    ({"conv_blocks": [{"filters": 8, "padding": "causal"}], "classes": 10}, "padding 'causal' is not supported"),
    ({"conv_blocks": [{"filter": 8}], "classes": 10}, "unknown setting 'filter'"),
    ({"conv_blocks": [{"filters": 8}]}, "setting 'classes' is required"),
    ({"layers": [{"layer": "Conv2D", "name": "c", "filters": 8, "dilation_rate": 2}]}, "unknown option 'dilation_rate'"),
    ({"layers": [{"layer": "LSTM", "name": "l"}]}, "layer class 'LSTM' is not in the family"),
])
def test_bad_architecture_sections_name_the_setting(section, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_architecture(section, "my.yaml: architecture")


@pytest.mark.parametrize("config_name", ["dropout", "variant_batchnorm"])
def test_keras_file_describes_the_same_architecture(config_name, tmp_path):
    """A model built from a description and saved as .keras reads back, from config.json alone, as that description."""
    described = architecture(config_name)
    build_model(described).save(tmp_path / "model.keras")
    from_file, input_shape = architecture_of_keras_file(tmp_path / "model.keras")
    assert (from_file, input_shape) == (described, (32, 32, 3))


def test_describe_keras_writes_a_config_that_trains_the_same_network(tmp_path, capsys):
    """describe_keras turns a .keras file (Keras's own layer names) into a config with the same fingerprint."""
    import keras
    from keras import layers
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(16, 3, strides=2, padding="same"),
                              layers.BatchNormalization(), layers.Activation("relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(32, activation="elu"), layers.Dropout(0.2),
                              layers.Dense(10, activation="softmax")], name="mine")
    model.save(tmp_path / "mine.keras")
    assert describe_keras.main([str(tmp_path / "mine.keras"), "--out", str(tmp_path / "mine.yaml")]) == 0
    config = load_config(tmp_path / "mine.yaml")
    assert config.architecture == architecture_of_keras_file(tmp_path / "mine.keras")[0]
    assert config.architecture.name == "mine" and config.training == load_config(CONFIG_DIR / "baseline.yaml").training
    # Keras's own names (conv2d, batch_normalization, ...; numbered when earlier tests made layers in this process)
    assert [layer.name for layer in config.architecture.layers] == [layer.name for layer in model.layers]


def test_both_fit_commands_train_a_described_variant(tmp_path, monkeypatch):
    """`fit --config variant.yaml` on each side: run folders named by the architecture, which metrics.json
    and config.yaml record (same name, fingerprint and trainable parameters on both sides)."""
    from keras_reference import fit as keras_fit
    from lightning_impl import fit as lightning_fit
    monkeypatch.delenv(lightning_fit.RUN_DIR_ENV, raising=False)  # main sets it: undone after the test
    metrics = {}
    for framework, fit in (("keras", keras_fit), ("lightning", lightning_fit)):  # in-process: the suite's time
        assert fit.main(["--config", str(CONFIG_DIR / "variant_small.yaml"), "--subset", "64", "--epochs", "1",
                         "--batch-size", "32", "--out", str(tmp_path)]) == 0
        (run_dir,) = tmp_path.glob(f"{framework}-small-dropout-*")
        metrics[framework] = json.loads((run_dir / "metrics.json").read_text())
        assert load_config(run_dir / "config.yaml").architecture == architecture("variant_small")
    expected = {"name": "small", "fingerprint": architecture("variant_small").fingerprint}
    assert metrics["keras"]["architecture"] == metrics["lightning"]["architecture"] == expected
    assert metrics["keras"]["parameter_count"] == metrics["lightning"]["parameter_count"] == 44_586
