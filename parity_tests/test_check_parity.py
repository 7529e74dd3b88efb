"""The user command `python -m lightning_impl.check_parity MODEL.keras`."""
from lightning_impl import check_parity, convert
from parity_tests.harness import keras_and_port


def test_check_parity_passes_a_keras_model(tmp_path, capsys):
    """A Keras model's file passes: exit 0, a per-layer table and the PASS verdict."""
    model, _ = keras_and_port("dropout")
    model.save(tmp_path / "model.keras")
    assert check_parity.main([str(tmp_path / "model.keras"), "--images", "64"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "dense1" in out and "all within tolerance" in out


def test_check_parity_names_the_first_differing_layer(tmp_path, capsys, monkeypatch):
    """A conversion that forgets the flatten permutation fails with exit 1, dense1 named first."""
    model, _ = keras_and_port("baseline")
    model.save(tmp_path / "model.keras")
    original = convert.to_torch_layout

    def without_flatten_permutation(name, variable, value, network):
        return value.T if variable == "kernel" and value.ndim == 2 else original(name, variable, value, network)

    monkeypatch.setattr(convert, "to_torch_layout", without_flatten_permutation)
    assert check_parity.main([str(tmp_path / "model.keras"), "--images", "64"]) == 1
    out = capsys.readouterr().out
    assert "first difference beyond tolerance: dense1" in out and "verdict: FAIL" in out
