"""The run folder: one format for both frameworks, so any two runs can be compared.

    config.yaml  launch.json  history.csv  metrics.json  predictions.npz  confusion.csv  plots/  model.*

Every file is written to a temporary name in its own folder, flushed to disk and renamed, so a
killed run or a full disk never leaves half a file in place of a whole one, and every run gets a
new folder. Files get the user's usual permissions (the umask), as any file they create would.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from cifar_common.errors import UserError, WriteFailed

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
LAUNCH_FILE = "launch.json"  # what config.yaml does not hold: --subset and any Trainer flags
RUN_FILES = ("config.yaml", "history.csv", "metrics.json", "predictions.npz", "confusion.csv")
PLOT_FILES = ("loss.png", "accuracy.png", "predictions.png", "confusion.png")
DEFAULT_OUT = Path("runs")


def new_folder(parent: str | Path, name: str) -> Path:
    """Create `parent/name`, or `name-1`, `name-2`, ... : the first that does not exist (never reuse one)."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as error:  # a path under a file, a read-only or missing mount, no permission
        raise UserError(f"cannot create a folder in {parent} ({error.strerror}); choose a folder you "
                        f"can write to") from None
    raise UserError(f"could not create a new folder named {name} under {parent}")


def new_run_dir(out: str | Path | None, framework: str, variant: str, architecture: str = "tutorial") -> Path:
    """Create `OUT/<framework>-<variant>-<time>` (the tutorial's network) or
    `OUT/<framework>-<architecture>-<variant>-<time>` (any other), with its plots/ folder."""
    prefix = f"{framework}-{variant}" if architecture == "tutorial" else f"{framework}-{architecture}-{variant}"
    try:
        run_dir = new_folder(out if out is not None else DEFAULT_OUT, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    except UserError as error:
        raise UserError(f"--out: {error}") from None
    try:
        (run_dir / "plots").mkdir()
    except OSError as error:
        raise UserError(f"--out: cannot create {run_dir / 'plots'} ({error.strerror})") from None
    return run_dir


MIB = 1024 * 1024


def _new_temporary(path: Path) -> Path:
    """An empty file next to `path`, keeping its suffix (Keras needs `.keras`), mode 0666 less the umask."""
    while True:
        tmp = path.with_name(f".{path.stem}-{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _sync(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk: a full disk can surface only here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def write_failure(path: Path, error: OSError, written: int) -> WriteFailed:
    """The one-line message for an OSError while writing `path`: what happened and what to do."""
    folder = path.parent
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        needed = max(written, _size(path)) / MIB  # a new version is about as big as the last one
        try:
            free = f", {shutil.disk_usage(folder).free / MIB:.1f} MB free now"
        except OSError:
            free = ""
        return WriteFailed(f"no space left on the disk of {folder} while writing {path.name} "
                           f"(it needs at least {needed:.1f} MB{free}); free space there")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WriteFailed(f"cannot write {path}: {error.strerror}; make {folder} writable or choose "
                           f"another --out")
    return WriteFailed(f"cannot write {path}: {error.strerror or error}")


def write_atomically(path: str | Path, write: Callable[[Path], None],
                     verify: Callable[[Path], object] | None = None, previous: Path | None = None) -> None:
    """Call `write(tmp)` and rename tmp to `path`: readers see the old file or the whole new one.

    tmp is in `path`'s folder (a rename across file systems is a copy, and not atomic), flushed to
    the disk before the rename, and checked with `verify(tmp)` when given. With `previous`, the file
    being replaced is kept there (the older copy in `previous` is dropped first, so the disk holds
    at most two versions plus the one being written). Any failure leaves `path` as it was and
    raises WriteFailed.
    """
    path = Path(path)
    tmp = None
    try:
        if previous is not None and path.exists():
            previous.unlink(missing_ok=True)
        tmp = _new_temporary(path)
        write(tmp)
        _sync(tmp)
        if verify is not None:
            try:
                verify(tmp)
            except Exception as error:  # whatever the loader raises: the new file is unusable
                raise WriteFailed(f"{path}: the file just written does not load back ({error}); "
                                  f"{path.name} was left as it was") from None
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
        _sync(path.parent)
    except OSError as error:
        raise write_failure(path, error, _size(tmp) if tmp else 0) from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # the message above matters more than a leftover temporary file


def write_text(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_launch(run_dir: Path, subset: int | None, trainer: dict[str, Any] | None = None) -> None:
    """How the run was started beyond its config, so that it can be resumed with the same settings."""
    write_text(run_dir / LAUNCH_FILE, json.dumps({"subset": subset, "trainer": trainer}, indent=2) + "\n")


def read_launch(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / LAUNCH_FILE).read_text())


def write_history(run_dir: Path, rows: list[dict[str, float]]) -> None:
    """history.csv: one row per epoch, epochs counted from 1 as Keras prints them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in HISTORY_COLUMNS})
    write_text(run_dir / "history.csv", buffer.getvalue())


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def write_predictions(run_dir: Path, y_true: np.ndarray, probs: np.ndarray) -> None:
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs {probs.shape} does not match y_true {y_true.shape}")

    def save(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object, so numpy does not append another .npz
            np.savez_compressed(f, y_true=y_true, probs=probs)

    write_atomically(run_dir / "predictions.npz", save)


def write_confusion(run_dir: Path, confusion: np.ndarray) -> None:
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(confusion, dtype=np.int64), fmt="%d", delimiter=",")
    write_text(run_dir / "confusion.csv", buffer.getvalue())


def confusion_from_predictions(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = truth, columns = predicted."""
    return np.bincount(num_classes * np.asarray(y_true) + np.asarray(y_pred),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Run:
    """A finished run folder, read back."""
    path: Path
    config: dict[str, Any]
    history: dict[str, np.ndarray]
    metrics: dict[str, Any]
    y_true: np.ndarray
    probs: np.ndarray
    confusion: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def label(self) -> str:
        return f"{self.metrics.get('framework', '?')}/{self.metrics.get('variant', '?')} ({self.path.name})"


def read_history(run_dir: Path) -> dict[str, np.ndarray]:
    """history.csv as one array per column."""
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(row[key]) for row in rows]) for key in HISTORY_COLUMNS}


def read_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a complete run folder: missing {', '.join(missing)}")
    try:
        history = read_history(run_dir)
        with np.load(run_dir / "predictions.npz") as npz:
            y_true, probs = npz["y_true"], npz["probs"]
        confusion = np.loadtxt(run_dir / "confusion.csv", delimiter=",", dtype=np.int64, ndmin=2)
        if probs.ndim != 2 or len(probs) != len(y_true) or confusion.shape != (probs.shape[1],) * 2:
            raise ValueError(f"probs {probs.shape}, y_true {y_true.shape} and confusion {confusion.shape} "
                             f"do not fit together")
        return Run(
            path=run_dir,
            config=yaml.safe_load((run_dir / "config.yaml").read_text()),
            history=history,
            metrics=json.loads((run_dir / "metrics.json").read_text()),
            y_true=y_true,
            probs=probs,
            confusion=confusion,
        )
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{run_dir}: cannot read run folder ({type(error).__name__}: {error})") from None
