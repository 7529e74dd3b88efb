"""Save and load: a Lightning checkpoint reloads to identical outputs (the `.keras` file's own round trip is
pinned in test_reference_behaviour)."""
import lightning as L
import pytest
import torch

from cifar_common.data import Cifar10
from lightning_impl.datamodule import Cifar10DataModule, to_nchw_tensor
from lightning_impl.module import CifarClassifier
from parity_tests.harness import architecture


def train_two_steps(module: CifarClassifier, cifar, root) -> L.Trainer:
    data = Cifar10(cifar.x_train[:1000], cifar.y_train[:1000], cifar.x_test[:256], cifar.y_test[:256])
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=root, use_distributed_sampler=False)
    trainer.fit(module, datamodule=Cifar10DataModule(data=data, batch_size=64))
    return trainer


@pytest.mark.parametrize("config_name", ["dropout", "variant_batchnorm"])
def test_lightning_checkpoint_reloads_to_identical_outputs(config_name, cifar, tmp_path):
    """A module trained a few steps, saved by the Trainer and reloaded, gives bit-identical probabilities;
    the architecture (and BatchNorm's moving statistics) come back from the checkpoint alone."""
    module = CifarClassifier(architecture=architecture(config_name).to_dict())
    trainer = train_two_steps(module, cifar, tmp_path)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    reloaded = CifarClassifier.load_from_checkpoint(path, map_location="cpu")
    assert reloaded.network.architecture == architecture(config_name)
    images = to_nchw_tensor(cifar.x_test[:256])
    module.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.equal(torch.softmax(module(images), 1), torch.softmax(reloaded(images), 1))
    for name, buffer in module.network.named_buffers():
        assert torch.equal(buffer, dict(reloaded.network.named_buffers())[name]), name


def test_checkpoint_written_before_architectures_reloads_as_the_tutorial(cifar, tmp_path):
    """A checkpoint whose hyperparameters hold only `dropout` (as before architectures were data) reloads
    as the tutorial's dropout network with its weights."""
    module = CifarClassifier(dropout=True)
    trainer = train_two_steps(module, cifar, tmp_path)
    path = tmp_path / "old.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["hyper_parameters"].pop("architecture")  # what an old checkpoint holds
    torch.save(checkpoint, path)
    reloaded = CifarClassifier.load_from_checkpoint(path, map_location="cpu")
    assert reloaded.network.architecture == architecture("dropout")
    for name, value in module.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[name]), name
