"""Data: the DataModule feeds, bit for bit, the arrays Keras trains, validates and tests on."""
import keras
import numpy as np
from keras.src.trainers.data_adapters.array_slicing import train_validation_split  # what fit() calls

from cifar_common.data import to_unit_float
from lightning_impl.datamodule import Cifar10DataModule


def nhwc(tensor) -> np.ndarray:
    return tensor.permute(0, 2, 3, 1).numpy()


def test_datamodule_tensors_equal_keras_arrays(cifar):
    """Keras's own validation_split of the tutorial's arrays equals the DataModule's tensors, bit for bit."""
    x_train = to_unit_float(cifar.x_train)
    y_train = keras.utils.to_categorical(cifar.y_train, 10)
    (keras_x, keras_y), (keras_val_x, keras_val_y) = train_validation_split((x_train, y_train), validation_split=0.3)
    datamodule = Cifar10DataModule(data=cifar, batch_size=256)
    datamodule.setup("fit")
    assert np.array_equal(nhwc(datamodule.train_images), np.asarray(keras_x))
    assert np.array_equal(nhwc(datamodule.val_images), np.asarray(keras_val_x))
    assert np.array_equal(datamodule.train_labels.numpy(), np.asarray(keras_y).argmax(axis=1))
    assert np.array_equal(datamodule.val_labels.numpy(), np.asarray(keras_val_y).argmax(axis=1))
    assert np.array_equal(nhwc(datamodule.test_images), to_unit_float(cifar.x_test))
    assert np.array_equal(datamodule.test_labels.numpy(), cifar.y_test)
