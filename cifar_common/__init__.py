"""Framework-neutral pieces shared by the Keras reference and the Lightning port.

Nothing in this package imports TensorFlow or torch: reading CIFAR-10, configs, run folders,
plots and comparison statistics are written once here and used by both sides.
"""
