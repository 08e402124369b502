"""An output folder that appears complete or not at all.

Results are written into a hidden sibling folder and moved into place when the job
succeeds; on an error or Ctrl-C the partial folder is removed, so a half-written result
never looks like a finished one. An existing folder with content is only replaced when the
user asked for it, only after the new results are complete, and only if it is an earlier
result: every entry in it is listed in the manifest (:data:`MANIFEST_NAME`) that a finished
result carries. A folder holding anything else (the input volumes, a user's notes) is never
replaced.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from Wonder3DMedLib.errors import OutputError

__all__ = [
    "StagedOutputFolder",
    "MANIFEST_NAME",
    "partial_path",
    "write_file_atomically",
    "foreign_entries",
    "write_manifest",
    "record_entry",
]

#: File in a finished result folder listing the entries Wonder3DMed wrote there.
MANIFEST_NAME = ".wonder3dmed-output.json"
_MANIFEST_FORMAT = "wonder3dmed-output"


def partial_path(target: Path, *, file: bool = True) -> Path:
    """A fresh hidden sibling of ``target`` to write into first: ``.STEM.partial-PID-HEX.SUFFIX``
    for a file (writers pick the format from the suffix), ``.NAME.partial-PID-HEX`` for a folder."""
    target = Path(target)
    while True:
        tag = f"partial-{os.getpid()}-{secrets.token_hex(4)}"
        name = f".{target.stem}.{tag}{target.suffix}" if file else f".{target.name}.{tag}"
        candidate = target.with_name(name)
        if not candidate.exists():
            return candidate


def write_file_atomically(target: Path, write, *, what: str) -> Path:
    """Run ``write(path)`` on a fresh sibling of ``target``, then rename it onto ``target``.

    A failure never leaves a half-written file, and no file but ``target`` is replaced.

    Raises
    ------
    OutputError
        The write or the rename failed (the OS error, reported against ``target``).
    """
    target = Path(target)
    partial = partial_path(target)
    try:
        write(partial)
        os.replace(partial, target)
    except OSError as error:
        raise OutputError(f"cannot write the {what}: {error.strerror or error}", path=target) from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that its manifest does not list (all of them without a manifest)."""
    names = sorted(entry.name for entry in folder.iterdir())
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        listed = set(manifest["entries"]) if manifest.get("format") == _MANIFEST_FORMAT else set()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        listed = set()
    return [name for name in names if name != MANIFEST_NAME and name not in listed]


def write_manifest(folder: Path, entries) -> None:
    """Write the manifest of a finished result ``folder`` listing ``entries`` (names in it)."""
    manifest = {"format": _MANIFEST_FORMAT, "version": 1, "entries": sorted(entries)}
    (Path(folder) / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def record_entry(folder: Path, name: str) -> None:
    """List ``name`` in the manifest of the finished result ``folder`` (a file added after commit)."""
    path = Path(folder) / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["entries"] = sorted(set(manifest["entries"]) | {name})
    path.write_text(json.dumps(manifest, indent=2) + "\n")


class StagedOutputFolder:
    """Write into a temporary folder; :meth:`commit` moves it to ``target``.

    Parameters
    ----------
    target : Path
        The folder the user named.
    overwrite : bool
        Replace an existing, non-empty ``target`` on commit, if it is an earlier result.
    replaceable : callable, optional
        ``replaceable(target) -> bool``: an existing earlier result this returns True for
        is replaced even without ``overwrite`` (e.g. an earlier demo's own output).

    Raises
    ------
    OutputError
        ``target`` exists with content and may not be replaced (not asked for, or it
        holds entries Wonder3DMed did not write), is not a folder, or its parent cannot
        be written.
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
                hint="choose a new --out folder, or pass --overwrite to replace an earlier result there",
            )
        foreign = foreign_entries(self.target) if has_content else []
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            unlisted = "" if (self.target / MANIFEST_NAME).is_file() else (
                f" (it has no {MANIFEST_NAME}: not a Wonder3DMed result, or one written before results listed "
                "their files)"
            )
            raise OutputError(
                f"the output folder holds files Wonder3DMed did not write ({shown}){unlisted}; it is only "
                "replaced when it holds an earlier result and nothing else",
                path=self.target,
                hint="choose a new --out folder, or move those files out (or delete an old result) first",
            )
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create the output folder's parent: {error.strerror}", path=parent) from error
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError("the output folder cannot be written (no permission)", path=parent,
                              hint="choose a folder you can write to with --out")
        self.path = partial_path(self.target, file=False)
        try:
            self.path.mkdir()
        except OSError as error:
            raise OutputError(f"cannot write in the output folder's parent: {error.strerror}", path=parent) from error
        self._done = False

    def commit(self) -> Path:
        """Move the finished results to the target (replacing it if allowed) and return it."""
        write_manifest(self.path, [entry.name for entry in self.path.iterdir()])
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
