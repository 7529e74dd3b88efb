"""Errors a user can fix: reported as one line and exit status 2, never as a traceback."""
from __future__ import annotations

import functools
import sys
from typing import Callable

USAGE_EXIT_STATUS = 2


class UserError(Exception):
    """A problem with the user's input (data, flags, config, model file) and how to fix it."""


def exits_cleanly_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """Turn a `UserError` escaping `main` into one message on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_EXIT_STATUS

    return wrapper


class WriteFailed(UserError):
    """A file of the run could not be written (full disk, no permission); the file it replaces is intact."""


def non_finite_loss(metric: str, value: float, epoch: int, checkpoint: str) -> UserError:
    """Both fit commands' stop on a nan or inf epoch loss; `checkpoint` is the per-epoch file's name."""
    kept = (f"{checkpoint} keeps epoch {epoch - 1}, the last good one" if epoch > 1
            else "no epoch finished with finite losses, so there is no checkpoint")
    return UserError(f"{metric} became {value} in epoch {epoch}; training stopped and {kept}. "
                     f"Try a smaller --learning-rate.")
