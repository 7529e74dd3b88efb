"""The run folder: format, one reader, atomic writes, metrics.json, resume, logs. Imports spec; never analysis."""
