"""Errors a user can act on.

Every error raised on purpose by the library derives from :class:`Wonder3DMedError`
and says what was wrong, which file or parameter it concerns and what to do. The
command line prints these without a traceback; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "Wonder3DMedError",
    "InputError",
    "WeightsError",
    "OutputError",
    "Cancelled",
]


class Wonder3DMedError(Exception):
    """Base class of the errors meant for the user.

    Parameters
    ----------
    message : str
        What went wrong, in plain words.
    path : str or Path, optional
        The file or folder concerned; printed with the message.
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else Path(path)
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.path is not None:
            text += f" [{self.path}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InputError(Wonder3DMedError):
    """An input file or argument cannot be used as given."""


class WeightsError(Wonder3DMedError):
    """The Wonder3D checkpoint is missing, incomplete or unreadable."""


class OutputError(Wonder3DMedError):
    """An output cannot be written (unwritable folder, existing results)."""


class Cancelled(Wonder3DMedError):
    """The user cancelled a long computation (Ctrl-C, Cancel button, cancel file)."""

    def __init__(self, message: str = "cancelled by the user", **kwargs):
        super().__init__(message, **kwargs)
