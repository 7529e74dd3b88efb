"""The LightningModule: wraps the described `CifarCNN`, owns the steps, the Keras-exact RMSprop and the metrics.

Epoch metrics follow Keras: `loss` and `accuracy` are sample-weighted means over the epoch's
training batches (dropout active, weights changing); `val_*` come from a pass in inference mode
after the epoch. Accuracy is micro (the share of right predictions), as Keras's "accuracy" is.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cifar_common.spec.config import DatasetConfig, tutorial_architecture
from cifar_common.spec.layers import Architecture
from cifar_common.spec.yaml_form import parse_architecture
from lightning_impl.network import CifarCNN
from lightning_impl.optim import KerasRMSprop


def described_architecture(hparams: dict[str, Any]) -> Architecture:
    """The network a module's (or a checkpoint's) hyperparameters describe, old checkpoints included."""
    if hparams.get("architecture") is not None:
        return parse_architecture(hparams["architecture"], "checkpoint architecture")
    return tutorial_architecture(bool(hparams.get("dropout", False)))


class CifarClassifier(L.LightningModule):
    """`architecture` is the description's explicit form (`Architecture.to_dict()`), kept in the
    checkpoint's hyperparameters; without it, the tutorial's network (with dropout if `dropout`), which
    is also how checkpoints written before architectures were data reload."""

    def __init__(self, architecture: dict[str, Any] | None = None, dropout: bool = False,
                 learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7, num_classes: int = 10,
                 channels_last: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.architecture = described_architecture(self.hparams)
        self.network = CifarCNN(self.architecture, DatasetConfig(num_classes=num_classes))
        self.channels_last = channels_last
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        # Keras's epoch "loss" is a mean over samples; weight each batch's mean by its size.
        self.train_loss, self.val_loss, self.test_loss = (torchmetrics.MeanMetric() for _ in range(3))
        self.train_accuracy, self.val_accuracy, self.test_accuracy = (
            MulticlassAccuracy(num_classes, average="micro") for _ in range(3))
        self.test_confusion = MulticlassConfusionMatrix(num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.network(images)

    def _shared_step(self, batch, loss_metric, accuracy_metric) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits = self(images)
        # Equals Keras's categorical_crossentropy on the softmax output (TF computes it from the logits).
        loss = F.cross_entropy(logits, labels)
        loss_metric.update(loss.detach(), weight=len(labels))
        accuracy_metric.update(logits.detach(), labels)
        return loss, logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, self.train_loss, self.train_accuracy)
        # Logging Metric objects: Lightning computes them once per epoch (and syncs them under DDP).
        self.log("loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("accuracy", self.train_accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, self.val_loss, self.val_accuracy)
        self.log("val_loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val_accuracy", self.val_accuracy, on_step=False, on_epoch=True, prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        _, logits = self._shared_step(batch, self.test_loss, self.test_accuracy)
        self.test_confusion.update(logits.detach(), batch[1])
        self.log("test_loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test_accuracy", self.test_accuracy, on_step=False, on_epoch=True)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return torch.softmax(self(batch[0]), dim=1)

    def on_train_epoch_start(self) -> None:
        batches = self.trainer.train_dataloader
        if hasattr(batches, "set_epoch"):  # a new, seeded order every epoch
            batches.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        h = self.hparams
        return KerasRMSprop(self.parameters(), lr=h.learning_rate, rho=h.rho, epsilon=h.epsilon)
