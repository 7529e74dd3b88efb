"""Keras's categorical and sparse categorical cross-entropy, as Keras on TensorFlow computes them.

Imports only torch, so generated model files can carry a copy of the class.
"""
from __future__ import annotations

import torch
from torch import nn


class KerasCrossEntropy(nn.Module):
    """keras.losses.CategoricalCrossentropy / SparseCategoricalCrossentropy, mean over the batch
    (Keras's "sum_over_batch_size"), computed from what the network returns: the logits of its last
    layer, whose softmax Keras's model applies.

    Where Keras on TensorFlow takes logits: the output of a softmax activation carries its logits
    (`_keras_logits`), and TensorFlow's cross-entropy then uses them, without clipping, whether or not
    `from_logits` is set. That is every model of the family (it ends with softmax), so by default the
    loss is log-softmax cross-entropy of the logits. With `softmax_logits=False` the loss sees the
    probabilities as Keras does when they carry no logits (TF on other outputs, Keras's torch and JAX
    backends): normalised to sum 1, clipped to [1e-7, 1 - 1e-7], then the log (saturated predictions
    get no gradient; the sparse form clips first and renormalises after the log, as TensorFlow's does);
    with `from_logits` it takes them as logits.

    `label_smoothing` (categorical only, as in Keras): target * (1 - s) + s / classes.
    Targets: class indices when `sparse`, else one-hot (or soft) rows; integer labels are accepted in
    either case and one-hot encoded.
    """

    EPSILON = 1e-7  # keras.config.epsilon()

    def __init__(self, sparse: bool = False, from_logits: bool = False, label_smoothing: float = 0.0,
                 softmax_logits: bool = True):
        super().__init__()
        if sparse and label_smoothing:
            raise ValueError("SparseCategoricalCrossentropy has no label_smoothing in Keras")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.sparse, self.from_logits, self.label_smoothing = sparse, from_logits, label_smoothing
        self.softmax_logits = softmax_logits

    def log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.softmax_logits:
            return torch.log_softmax(logits, dim=1)
        probabilities = torch.softmax(logits, dim=1)
        if self.from_logits:
            return torch.log_softmax(probabilities, dim=1)
        if self.sparse:  # TensorFlow's sparse form clips, takes the log, then log-softmax (renormalises)
            return torch.log_softmax(torch.log(torch.clamp(probabilities, self.EPSILON, 1.0 - self.EPSILON)), dim=1)
        probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
        return torch.log(torch.clamp(probabilities, self.EPSILON, 1.0 - self.EPSILON))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            target = nn.functional.one_hot(target.long(), logits.shape[1])
        target = target.to(logits.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / logits.shape[1]
        return -(target * self.log_probabilities(logits)).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return (f"sparse={self.sparse}, from_logits={self.from_logits}, label_smoothing={self.label_smoothing}, "
                f"softmax_logits={self.softmax_logits}")
