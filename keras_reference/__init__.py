"""The reference: the classic Keras CIFAR-10 tutorial, as a package. Imports TensorFlow/Keras, never torch."""
