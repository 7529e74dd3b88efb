"""What the end-to-end tests share about the runs they start: the small port run's arguments and
finding the one run folder a command made."""
from __future__ import annotations

from pathlib import Path

# 358 training images in batches of 32 for 3 epochs: 12 steps an epoch, so a signal can land mid-epoch,
# and a second epoch whose checkpoint a fault can hit.
SMALL_RUN_ARGS = ("--dropout", "--subset", "512", "--batch-size", "32", "--epochs", "3")
SMALL_RUN_STEPS_PER_EPOCH = 12


def only_run_dir(out: Path) -> Path:
    """The one run folder a command made under `out`."""
    (run_dir,) = out.iterdir()
    return run_dir
