"""A `fit` command that stops for good, saying so, the first time it is about to write history.csv.

    python -m parity_tests.pause_before_history keras_reference.fit --subset 128 --epochs 2 --out DIR

Runs `keras_reference.fit` or `lightning_impl.fit` with its arguments, with that side's
`HistoryWriter.write` replaced: it prints PAUSED and sleeps. test_faults.py kills the process there
with SIGKILL, in the window between an epoch's checkpoint and its history row.
"""
from __future__ import annotations

import importlib
import sys
import time

PAUSED = "paused before writing history.csv"
CALLBACKS = {"keras_reference.fit": "keras_reference.callbacks", "lightning_impl.fit": "lightning_impl.callbacks"}


def main() -> None:
    command, *args = sys.argv[1:]

    def pause(*_: object) -> None:
        print(PAUSED, flush=True)
        time.sleep(3600)

    importlib.import_module(CALLBACKS[command]).HistoryWriter.write = pause
    sys.exit(importlib.import_module(command).main(args))


if __name__ == "__main__":
    main()
