"""The Lightning port of the Keras CIFAR-10 CNN. Imports torch, Lightning and torchmetrics, never TensorFlow."""
