"""The benchmark: driver and timing rule. Imports spec, rundir and the top level; never a framework."""
