"""Which checkpoint an interrupted run carries on from, and what to tell the user; both frameworks.

Each run keeps its per-epoch checkpoint (`checkpoints/last.*`) and, once a newer one is written
and verified, the one before it (`checkpoints/last.previous.*`, see `rundir.atomic.write_atomically`). A
resume takes the newest of the two that loads; the framework supplies the loader.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from cifar_common.errors import UserError, WriteFailed
from cifar_common.rundir.folder import LAUNCH_FILE, read_history, read_launch

# The flags that set what a run is; a resumed run takes them all from its folder.
SETTING_FLAGS = ("dropout", "config", "epochs", "batch_size", "learning_rate", "seed", "subset", "out", "data_order")
# The checkpoint files of each fit command (`checkpoints/last.keras`, `last.ckpt`, their previous versions).
CHECKPOINT_FRAMEWORK = {".keras": "keras", ".ckpt": "lightning"}

# Loads a checkpoint file: (epochs it has finished, whatever the framework needs from it). Raises
# UserError when the file loads but cannot serve this run (another network); anything else means damaged.
Loader = Callable[[Path], tuple[int, Any]]


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    epochs_done: int
    content: Any


def refuse_setting_flags(args: argparse.Namespace, more: Iterable[str] = ()) -> None:
    given = [name for name in (*SETTING_FLAGS, *more) if getattr(args, name) not in (None, False)]
    if given:
        raise UserError(f"--resume takes every setting from the run folder; drop --{given[0].replace('_', '-')}")


def open_unfinished_run(run_dir: Path, command: str) -> dict[str, Any]:
    """launch.json of a run folder `command` started and that has not finished; UserError otherwise."""
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: no such run folder")
    if (run_dir / "metrics.json").is_file():
        raise UserError(f"--resume {run_dir}: this run finished already (metrics.json exists)")
    launch_file = run_dir / LAUNCH_FILE
    if not launch_file.is_file() or not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume {run_dir}: not a run folder of {command} (config.yaml or {launch_file.name} "
                        f"missing)")
    return read_launch(run_dir)


def framework_of(run_dir: Path, launch: dict[str, Any]) -> str | None:
    """The framework whose fit started a run folder: launch.json's "framework"; for folders written before
    it had that key, the kind of checkpoint the folder holds (None when it holds none)."""
    if "framework" in launch:
        return launch["framework"]
    found = {CHECKPOINT_FRAMEWORK.get(path.suffix) for path in (run_dir / "checkpoints").glob("last*")} - {None}
    return found.pop() if len(found) == 1 else None


def on_disk_without_checkpoint(run_dir: Path) -> str:
    """What a run folder without a checkpoint holds, in words: whether history.csv lists epochs."""
    epochs = list(read_history(run_dir)["epoch"]) if (run_dir / "history.csv").is_file() else []
    if not epochs:
        return "history.csv lists no epoch either: the run stopped before its first epoch was saved"
    return (f"history.csv lists epoch {int(epochs[-1])}, but no checkpoint holds it (the run stopped while "
            f"saving it)")


def previous_version(path: Path) -> Path:
    """Where the version a new checkpoint replaced is kept: `last.ckpt` -> `last.previous.ckpt`."""
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def damaged_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}.damaged{path.suffix}")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0].split('. ')[0][:120]}" if text else type(error).__name__


def _try_load(path: Path, load: Loader, shown: Path | None = None) -> Checkpoint | str:
    """The checkpoint, or why it cannot be used (a UserError from `load` is raised as it is)."""
    try:
        epochs_done, content = load(path)
    except UserError:
        raise
    except Exception as error:  # torch, zipfile, h5py and OS errors alike: the file is damaged
        return f"{shown or path} is damaged or truncated ({_reason(error)})"
    return Checkpoint(path, epochs_done, content)


def last_good(last: Path, load: Loader) -> Checkpoint | None:
    """The newest of `last` and its previous version that loads, or None."""
    for candidate in (last, previous_version(last)):
        if candidate.is_file():
            found = _try_load(candidate, load)
            if isinstance(found, Checkpoint):
                return found
    return None


def checkpoint_to_resume(run_dir: Path, last: Path, load: Loader) -> Checkpoint:
    """The checkpoint `--resume run_dir` carries on from; a one-line warning when it is the previous one.

    A damaged `last` is renamed `last.damaged.*`, so the next checkpoint written does not keep it as
    the previous version. No loadable checkpoint: UserError, the run must start again.
    """
    problems = []
    for candidate in (last, previous_version(last)):
        if not candidate.is_file():
            continue
        found = _try_load(candidate, load, candidate.relative_to(run_dir))
        if isinstance(found, Checkpoint):
            if problems:
                moved = damaged_name(last)
                try:
                    last.replace(moved)
                except FileNotFoundError:
                    pass  # another process of the same run (DDP) moved it first
                print(f"warning: {problems[0]}; carrying on from {candidate.name} (epoch {found.epochs_done}) "
                      f"instead, the damaged file is kept as {moved.name}", file=sys.stderr)
            return found
        problems.append(found)
    if problems:
        raise UserError(f"--resume {run_dir}: {problems[0]} and there is no earlier good checkpoint; the run "
                        f"must start again (without --resume)")
    raise UserError(f"--resume {run_dir}: no {last.relative_to(run_dir)}; {on_disk_without_checkpoint(run_dir)}; "
                    f"start a new run")


def carry_on_hint(command: str, run_dir: Path, good: Checkpoint | None) -> str:
    """What to do after a failure: resume from the last good checkpoint, named, or start again."""
    if good is None:
        return "no epoch was saved, so the run must start again"
    return (f"{good.path.relative_to(run_dir)} keeps epoch {good.epochs_done}; carry on with: "
            f"{command} --resume {run_dir}")


def with_carry_on_hint(failure: WriteFailed, command: str, run_dir: Path, last: Path, load: Loader) -> WriteFailed:
    """The write failure's message, completed with where the run can carry on from (one line)."""
    return WriteFailed(f"{failure}; {carry_on_hint(command, run_dir, last_good(last, load))}")
