"""Architecture: the same layers, shapes, parameters and dropout on both sides, for every described network."""
import pytest

from keras_reference.model import build_model, layer_table as keras_layer_table
from lightning_impl.network import CifarCNN, layer_table as port_layer_table
from parity_tests.harness import ARCHITECTURES, architecture

# Trainable parameters, as model.summary() counts them (BatchNorm's moving statistics are not trainable).
TRAINABLE_PARAMETERS = {
    "baseline": 669_354,  # the Keras tutorial's model.summary()
    "dropout": 669_354,
    # conv 3x3: 896 + 9,248 + 18,496 + 36,928 + 73,856 + 147,584; dense 2,048x128+128 = 262,272 and 1,290;
    # BatchNorm gamma and beta: 2 x (32+32+64+64+128+128+128) = 1,152
    "variant_batchnorm": 551_722,
    # conv 5x5x3x24+24 = 1,824, 3x3x24x48+48 = 10,416, 3x3x48x48+48 = 20,784; dense 48x96+96 = 4,704,
    # 96x64+64 = 6,208, 64x10+10 = 650
    "variant_small": 44_586,
}
MOVING_STATISTICS = {"baseline": 0, "dropout": 0, "variant_batchnorm": 1_152, "variant_small": 0}


def nhwc_to_nchw(shape: tuple) -> tuple:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_layer_tables_match_keras(config_name):
    """Per layer: same name, class, output shape (NHWC mapped to NCHW), trainable and moving-statistic counts, rate."""
    keras_rows = keras_layer_table(build_model(architecture(config_name)))
    port_rows = port_layer_table(CifarCNN(architecture(config_name)))
    assert [r["name"] for r in port_rows] == [r["name"] for r in keras_rows]

    def key(row: dict, shape: tuple) -> tuple:
        return row["kind"], shape, row["params"], row["non_trainable"], row["rate"]

    mismatches = [f"{k['name']}: keras {key(k, nhwc_to_nchw(k['output_shape']))} | port {key(p, p['output_shape'])}"
                  for k, p in zip(keras_rows, port_rows)
                  if key(k, nhwc_to_nchw(k["output_shape"])) != key(p, p["output_shape"])]
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_parameter_counts_match_the_hand_count(config_name):
    """Both frameworks count the trainable parameters and moving statistics worked out by hand above."""
    model, network = build_model(architecture(config_name)), CifarCNN(architecture(config_name))
    keras_trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    keras_moving = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    assert keras_trainable == sum(p.numel() for p in network.parameters() if p.requires_grad) \
        == TRAINABLE_PARAMETERS[config_name]
    assert keras_moving == sum(b.numel() for b in network.buffers()) == MOVING_STATISTICS[config_name]


def test_dropout_sits_after_each_pool_and_dense1():
    """Dropout 0.25 after each pool and 0.5 after dense1, in the same places on both sides."""
    for table in (keras_layer_table(build_model(architecture("dropout"))),
                  port_layer_table(CifarCNN(architecture("dropout")))):
        names = [r["name"] for r in table]
        rates = {r["name"]: r["rate"] for r in table if r["rate"] is not None}
        assert rates == {"dropout1": 0.25, "dropout2": 0.25, "dropout3": 0.25, "dropout4": 0.5}
        for pool, drop in (("pool1", "dropout1"), ("pool2", "dropout2"), ("pool3", "dropout3"),
                           ("dense1", "dropout4")):
            assert names.index(drop) == names.index(pool) + 1


def test_batchnorm_keeps_keras_epsilon_and_momentum():
    """The port's BatchNorm layers carry Keras's epsilon 1e-3 and momentum 0.99 (torch's defaults: 1e-5, 0.1)."""
    model, network = build_model(architecture("variant_batchnorm")), CifarCNN(architecture("variant_batchnorm"))
    keras_bn = {layer.name: (layer.epsilon, layer.momentum) for layer in model.layers if "BatchNormalization" in type(layer).__name__}
    port_bn = {name: (m.epsilon, m.momentum) for name, m in network.named_children() if type(m).__name__ == "KerasBatchNorm"}
    assert len(keras_bn) == 7 and port_bn == keras_bn and set(port_bn.values()) == {(1e-3, 0.99)}
