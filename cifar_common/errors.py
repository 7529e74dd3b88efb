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
