"""The run folder both fit commands write and every reader reads: its format, atomic writes, metrics.json, resume, TensorBoard logs. Imports `spec` and the top-level modules, never `analysis`."""
