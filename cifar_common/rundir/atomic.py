"""Atomic file writes: a temporary file in the target's own folder, flushed to the disk and renamed, so a
killed run or a full disk never leaves half a file in place of a whole one. Files get the user's
usual permissions (the umask), as any file they create would. A failure is one WriteFailed line
saying what happened and what to do.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from cifar_common.errors import WriteFailed

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
