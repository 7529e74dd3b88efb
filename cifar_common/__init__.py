"""Framework-neutral pieces shared by the Keras reference and the Lightning port.

Nothing in this package imports TensorFlow or torch. Sub-packages by job: `spec` (what a run is:
config, architecture, flags), `rundir` (the run folder), `analysis` (finished runs: comparisons,
bands, the results page); the top-level modules (data, errors, paths, plots, discrepancy, training_parity,
markdown) are shared leaves, and `compare` and `report` are entry points.
"""
