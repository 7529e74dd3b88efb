"""The LightningModule: wraps the described `CifarCNN`, owns the steps, the Keras-exact RMSprop and the metrics.

Epoch metrics follow Keras: `loss` and `accuracy` are sample-weighted means over the epoch's
training batches (dropout active, weights changing); `val_*` come from a pass in inference mode
after the epoch. Accuracy is micro (the share of right predictions), as Keras's "accuracy" is. Each
stage has one `MetricCollection` of the two, logged whole; Lightning computes them once per epoch
(and syncs them under DDP). One test pass gives the test loss, accuracy, confusion matrix and every
test image's probabilities.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cifar_common.spec.config import DatasetConfig, tutorial_architecture
from cifar_common.spec.layers import Architecture
from cifar_common.spec.yaml_form import parse_architecture
from lightning_impl.network import CifarCNN
from lightning_impl.keras_optimizers import KerasRMSprop


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
        # Keras's epoch "loss" is a mean over samples: each batch's mean is weighted by its size.
        # The two take different inputs, so each is updated on its own (no compute groups to find).
        self.train_metrics = MetricCollection({"loss": MeanMetric(),
                                               "accuracy": MulticlassAccuracy(num_classes, average="micro")},
                                              compute_groups=False)
        self.val_metrics = self.train_metrics.clone(prefix="val_")
        self.test_metrics = self.train_metrics.clone(prefix="test_")
        # Never logged, so Lightning leaves it (and the probabilities) for `fit` to read after the test pass.
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_probabilities: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.network(images)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                     metrics: MetricCollection) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's loss and logits; updates the stage's epoch metrics."""
        images, labels = batch
        logits = self(images)
        # Equals Keras's categorical_crossentropy on the softmax output (TF computes it from the logits).
        loss = F.cross_entropy(logits, labels)
        metrics["loss"].update(loss.detach(), weight=len(labels))  # by base name, whatever the prefix
        metrics["accuracy"].update(logits.detach(), labels)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=metrics is not self.test_metrics)
        return loss, logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, self.train_metrics)[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.test_probabilities = []

    def test_step(self, batch, batch_idx: int) -> None:
        _, logits = self._shared_step(batch, self.test_metrics)
        self.test_confusion.update(logits.detach(), batch[1])
        self.test_probabilities.append(torch.softmax(logits.detach().float(), dim=1).cpu())

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return torch.softmax(self(batch[0]), dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        h = self.hparams
        return KerasRMSprop(self.parameters(), lr=h.learning_rate, rho=h.rho, epsilon=h.epsilon)
