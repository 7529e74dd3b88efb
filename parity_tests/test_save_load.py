"""Save and load: a Lightning checkpoint and a `.keras` file each reload to identical outputs."""
import keras
import lightning as L
import numpy as np
import torch

from cifar_common.data import Cifar10
from lightning_impl.datamodule import Cifar10DataModule, to_nchw_tensor
from lightning_impl.module import CifarClassifier
from parity_tests.harness import keras_and_port


def test_lightning_checkpoint_reloads_to_identical_outputs(cifar, tmp_path, test_images):
    """A module trained a few steps, saved by the Trainer and reloaded, gives bit-identical probabilities."""
    data = Cifar10(cifar.x_train[:1000], cifar.y_train[:1000], cifar.x_test[:256], cifar.y_test[:256])
    module = CifarClassifier(dropout=True)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, use_distributed_sampler=False)
    trainer.fit(module, datamodule=Cifar10DataModule(data=data, batch_size=256))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    reloaded = CifarClassifier.load_from_checkpoint(path, map_location="cpu")
    images = to_nchw_tensor(cifar.x_test[:512])
    module.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.equal(torch.softmax(module(images), 1), torch.softmax(reloaded(images), 1))
    assert reloaded.hparams.dropout is True


def test_keras_file_reloads_to_identical_outputs(tmp_path, test_images):
    """A Keras model saved as .keras and loaded back predicts bit-identical probabilities."""
    model, _ = keras_and_port(dropout=True)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert np.array_equal(model.predict(test_images, verbose=0), reloaded.predict(test_images, verbose=0))
