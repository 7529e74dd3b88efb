"""Metrics: epoch loss and accuracy are Keras's sample-weighted means; accuracy is micro."""
import keras
import lightning as L
import numpy as np
import torch

from cifar_common.data import Cifar10
from lightning_impl.datamodule import Cifar10DataModule
from lightning_impl.module import CifarClassifier

METRIC_ATOL = 1e-6
TRAIN_IMAGES = 5 * 256 + 184  # five full batches and a last one of 184, as Keras's last batch


def test_epoch_metrics_are_keras_sample_weighted_means(cifar, tmp_path):
    """Lightning's epoch loss/accuracy equal keras.metrics.Mean / CategoricalAccuracy over the same batches."""
    n = int(TRAIN_IMAGES / 0.7) + 1  # so that the 70% training part holds TRAIN_IMAGES images
    data = Cifar10(cifar.x_train[:n], cifar.y_train[:n], cifar.x_test[:256], cifar.y_test[:256])
    datamodule = Cifar10DataModule(data=data, batch_size=256)
    module = CifarClassifier(dropout=True)
    seen = []  # (logits, labels) of every training batch, as the step saw them
    module.network.register_forward_hook(
        lambda m, inputs, out: seen.append(out.detach().clone()) if m.training else None)
    labels_seen = []
    original_step = module.training_step

    def recording_step(batch, batch_idx):
        labels_seen.append(batch[1].clone())
        return original_step(batch, batch_idx)

    module.training_step = recording_step
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    assert sum(len(y) for y in labels_seen) == TRAIN_IMAGES and len(labels_seen[-1]) == 184

    keras_loss, keras_accuracy = keras.metrics.Mean(), keras.metrics.CategoricalAccuracy()
    batch_means = []
    for logits, labels in zip(seen, labels_seen):
        target = keras.utils.to_categorical(labels.numpy(), 10)
        losses = keras.losses.categorical_crossentropy(target, logits.numpy(), from_logits=True)
        batch_means.append(float(np.mean(losses)))
        # What Keras's fit does: each batch's mean loss weighted by the batch's size.
        keras_loss.update_state(batch_means[-1], sample_weight=len(labels))
        keras_accuracy.update_state(target, logits.numpy())

    logged = trainer.callback_metrics
    assert abs(float(logged["loss"]) - float(keras_loss.result())) <= METRIC_ATOL
    assert abs(float(logged["accuracy"]) - float(keras_accuracy.result())) <= METRIC_ATOL
    # The weighting matters: the unweighted mean of batch means is measurably different.
    assert abs(float(np.mean(batch_means)) - float(keras_loss.result())) > 10 * METRIC_ATOL


def test_accuracy_is_micro_not_macro():
    """On an unbalanced batch the port's accuracy is right/total (Keras), not the per-class mean."""
    module = CifarClassifier()
    labels = torch.tensor([0] * 8 + [1] * 2)
    logits = torch.nn.functional.one_hot(torch.tensor([0] * 8 + [0, 1]), 10).float()
    module.train_metrics["accuracy"].update(logits, labels)
    keras_accuracy = keras.metrics.CategoricalAccuracy()
    keras_accuracy.update_state(keras.utils.to_categorical(labels.numpy(), 10), logits.numpy())
    micro = np.float32(9 / 10)  # macro would be (8/8 + 1/2) / 2 = 0.75
    assert np.float32(module.train_metrics["accuracy"].compute()) == np.float32(keras_accuracy.result()) == micro
