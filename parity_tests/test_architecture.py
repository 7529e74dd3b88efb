"""Architecture: the same layers, shapes, parameters and dropout on both sides."""
import pytest

from keras_reference.model import build_model, layer_table as keras_layer_table
from lightning_impl.network import CifarCNN, layer_table as port_layer_table

TOTAL_PARAMETERS = 669_354  # the Keras tutorial's model.summary()


def nhwc_to_nchw(shape: tuple) -> tuple:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


@pytest.mark.parametrize("dropout", [False, True], ids=["baseline", "dropout"])
def test_layer_tables_match_keras(dropout):
    """Per layer: same name, output shape (NHWC mapped to NCHW), parameter count and dropout rate."""
    keras_rows = keras_layer_table(build_model(dropout))
    port_rows = port_layer_table(CifarCNN(dropout))
    assert [r["name"] for r in port_rows] == [r["name"] for r in keras_rows]
    mismatches = [
        f"{k['name']}: keras {k['output_shape']} {k['params']} params rate {k['rate']} | "
        f"port {p['output_shape']} {p['params']} params rate {p['rate']}"
        for k, p in zip(keras_rows, port_rows)
        if (nhwc_to_nchw(k["output_shape"]), k["params"], k["rate"]) != (p["output_shape"], p["params"], p["rate"])
    ]
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("dropout", [False, True], ids=["baseline", "dropout"])
def test_parameter_count_is_669354(dropout):
    """Both frameworks have 669,354 trainable parameters in both variants."""
    assert build_model(dropout).count_params() == TOTAL_PARAMETERS
    assert sum(p.numel() for p in CifarCNN(dropout).parameters() if p.requires_grad) == TOTAL_PARAMETERS


def test_dropout_sits_after_each_pool_and_dense1():
    """Dropout 0.25 after each pool and 0.5 after dense1, in the same places on both sides."""
    for table in (keras_layer_table(build_model(True)), port_layer_table(CifarCNN(True))):
        names = [r["name"] for r in table]
        rates = {r["name"]: r["rate"] for r in table if r["rate"] is not None}
        assert rates == {"dropout1": 0.25, "dropout2": 0.25, "dropout3": 0.25, "dropout4": 0.5}
        for pool, drop in (("pool1", "dropout1"), ("pool2", "dropout2"), ("pool3", "dropout3"),
                           ("dense1", "dropout4")):
            assert names.index(drop) == names.index(pool) + 1
