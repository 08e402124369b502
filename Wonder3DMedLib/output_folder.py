"""An output folder that appears complete or not at all.

Results are written into a hidden sibling folder and moved into place when the job
succeeds; on an error or Ctrl-C the partial folder is removed, so a half-written result
never looks like a finished one. An existing folder with content is only replaced when the
user asked for it, and only after the new results are complete.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from Wonder3DMedLib.errors import OutputError

__all__ = ["StagedOutputFolder"]


class StagedOutputFolder:
    """Write into a temporary folder; :meth:`commit` moves it to ``target``.

    Parameters
    ----------
    target : Path
        The folder the user named.
    overwrite : bool
        Replace an existing, non-empty ``target`` on commit.
    replaceable : callable, optional
        ``replaceable(target) -> bool``: an existing folder this returns True for is
        replaced even without ``overwrite`` (e.g. an earlier demo's own output).

    Raises
    ------
    OutputError
        ``target`` exists with content and may not be replaced, is not a folder, or its
        parent cannot be written.
    """

    def __init__(self, target: str | Path, *, overwrite: bool = False, replaceable=None):
        self.target = Path(target).resolve()
        if self.target.exists() and not self.target.is_dir():
            raise OutputError("the output path exists and is not a folder", path=self.target)
        has_content = self.target.is_dir() and any(self.target.iterdir())
        may_replace = overwrite or (replaceable is not None and has_content and replaceable(self.target))
        if has_content and not may_replace:
            raise OutputError(
                "the output folder already exists and is not empty",
                path=self.target,
                hint="choose a new --out folder, or pass --overwrite to replace its contents",
            )
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create the output folder's parent: {error.strerror}", path=parent) from error
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError("the output folder cannot be written (no permission)", path=parent,
                              hint="choose a folder you can write to with --out")
        self.path = parent / f".{self.target.name}.partial-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            self.path.mkdir()
        except OSError as error:
            raise OutputError(f"cannot write in the output folder's parent: {error.strerror}", path=parent) from error
        self._done = False

    def commit(self) -> Path:
        """Move the finished results to the target (replacing it if allowed) and return it."""
        backup = None
        if self.target.exists():
            backup = self.target.parent / f".{self.target.name}.old-{secrets.token_hex(3)}"
            os.replace(self.target, backup)
        os.replace(self.path, self.target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        self._done = True
        return self.target

    def abort(self) -> None:
        """Remove the partial results (the target is left as it was)."""
        if not self._done:
            shutil.rmtree(self.path, ignore_errors=True)
            self._done = True
