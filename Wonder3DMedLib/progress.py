"""Progress reporting and cooperative cancel for long work.

Convention used throughout the library: a long function takes a keyword argument
``progress: ProgressCallback | None`` and calls it with the fraction of *its own*
work done (a float in [0, 1]) and a short message. The callback may raise
:class:`~Wonder3DMedLib.errors.Cancelled` to stop the work at that point, which is
how Cancel buttons, cancel files and Ctrl-C reach code deep inside a loop.

:class:`StageProgress` joins the callbacks of several stages into one display
(a terminal bar for the CLI, machine-readable lines for the Slicer worker) with
stage names, an ETA and the wall time of each stage.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TextIO

from Wonder3DMedLib.errors import Cancelled

__all__ = [
    "ProgressCallback",
    "report",
    "CancelToken",
    "ProgressSink",
    "TerminalProgress",
    "WorkerProgressLines",
    "StageProgress",
    "WORKER_PROGRESS_PREFIX",
]

ProgressCallback = Callable[[float, str], None]

WORKER_PROGRESS_PREFIX = "W3DM:PROGRESS"


def report(progress: ProgressCallback | None, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given; the one-liner long functions use."""
    if progress is not None:
        progress(min(max(float(fraction), 0.0), 1.0), message)


class CancelToken:
    """A cancel request shared between threads, optionally also signalled by a file.

    Parameters
    ----------
    cancel_file : Path, optional
        If this file exists the token counts as cancelled (how the Slicer panel
        asks the worker process to stop cleanly).
    """

    def __init__(self, cancel_file: str | Path | None = None):
        self._event = threading.Event()
        self.cancel_file = None if cancel_file is None else Path(cancel_file)

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was requested."""
        if not self._event.is_set() and self.cancel_file is not None and self.cancel_file.exists():
            self._event.set()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if a cancel was requested."""
        if self.cancelled:
            raise Cancelled()


class ProgressSink(Protocol):
    """Where overall progress is shown."""

    def update(self, overall: float, stage: str, message: str, eta_s: float | None) -> None: ...

    def close(self) -> None: ...


class TerminalProgress:
    """Progress on stderr: a single tqdm bar (stage name, percentage, elapsed/ETA, message)
    on a terminal; plain lines in a log (a pipe or file), one when the stage changes and
    one every ``log_step`` of the overall progress, so logs stay readable.

    ``disable=True`` hides it.
    """

    def __init__(self, stream: TextIO | None = None, *, disable: bool = False, log_step: float = 0.1):
        from tqdm.auto import tqdm

        self._stream = stream or sys.stderr
        self._disable = disable
        self._log_step = log_step
        self._logged: tuple[str, int] | None = None
        self._bar = None
        if not disable and _is_terminal(self._stream):
            self._resolution = 1000
            self._bar = tqdm(
                total=self._resolution,
                file=self._stream,
                bar_format="{desc:<14} {percentage:3.0f}%|{bar:24}| {elapsed}<{remaining} {postfix}",
                dynamic_ncols=True,
                leave=True,
            )

    def update(self, overall: float, stage: str, message: str, eta_s: float | None) -> None:
        if self._bar is not None:
            target = int(round(overall * self._resolution))
            self._bar.set_description_str(stage, refresh=False)
            self._bar.set_postfix_str(message, refresh=False)
            self._bar.update(max(target - self._bar.n, 0))
            self._bar.refresh()
        elif not self._disable:
            step = int(overall / self._log_step + 1e-9)
            if self._logged is None or self._logged[0] != stage or step > self._logged[1]:
                self._logged = (stage, step)
                eta = "" if eta_s is None else f" (whole job: about {_clock(eta_s)} left)"
                text = f"{stage}: {message}" if message else stage
                print(f"[{overall * 100:3.0f}%] {text}{eta}", file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


class WorkerProgressLines:
    """Machine-readable lines for the Slicer panel: ``W3DM:PROGRESS <fraction> <eta_s> <stage> <message>``.

    ``eta_s`` is ``-1`` while unknown. One line per update, flushed immediately.
    """

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout

    def update(self, overall: float, stage: str, message: str, eta_s: float | None) -> None:
        eta = -1 if eta_s is None else int(round(eta_s))
        text = " ".join(message.split())
        self._stream.write(f"{WORKER_PROGRESS_PREFIX} {overall:.4f} {eta} {stage} {text}\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class StageProgress:
    """One progress display across named stages, with ETA and per-stage timings.

    Parameters
    ----------
    stages : sequence of (name, weight)
        The stages in the order they run; a weight is the expected share of the
        total time (any positive scale).
    sink : ProgressSink, optional
        Where to show progress; nothing is shown when omitted.
    cancel : CancelToken, optional
        Checked at every progress report; a cancelled token raises
        :class:`Cancelled` from inside the running stage.
    min_interval_s : float
        Updates closer together than this are not forwarded to the sink (the
        end of a stage always is).

    Examples
    --------
    >>> tracker = StageProgress([("prepare", 1), ("mesh", 3)])
    >>> with tracker.stage("prepare") as progress:
    ...     progress(0.5, "halfway")
    >>> round(tracker.overall, 2)
    0.25
    """

    def __init__(
        self,
        stages: Sequence[tuple[str, float]],
        sink: ProgressSink | None = None,
        *,
        cancel: CancelToken | None = None,
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not stages:
            raise ValueError("stages must name at least one stage")
        weights = [float(w) for _, w in stages]
        if any(w <= 0 for w in weights):
            raise ValueError(f"stage weights must be positive, got {dict(stages)}")
        total = sum(weights)
        self._names = [name for name, _ in stages]
        if len(set(self._names)) != len(self._names):
            raise ValueError(f"stage names must be unique, got {self._names}")
        self._shares = dict(zip(self._names, (w / total for w in weights)))
        self._starts = {}
        offset = 0.0
        for name in self._names:
            self._starts[name] = offset
            offset += self._shares[name]
        self._sink = sink
        self._cancel = cancel
        self._min_interval = min_interval_s
        self._clock = clock
        self._t0: float | None = None
        self._last_emit = -float("inf")
        self.overall = 0.0
        self.timings_s: dict[str, float] = {}

    def _emit(self, stage: str, message: str, *, force: bool) -> None:
        now = self._clock()
        if self._sink is None or (not force and now - self._last_emit < self._min_interval):
            return
        self._last_emit = now
        elapsed = now - (self._t0 if self._t0 is not None else now)
        eta = None
        if self.overall > 0.02 and elapsed > 0.5:
            eta = elapsed * (1.0 - self.overall) / self.overall
        self._sink.update(self.overall, stage, message, eta)

    def callback(self, stage: str) -> ProgressCallback:
        """The progress callback of one stage (fractions are of that stage)."""
        if stage not in self._shares:
            raise KeyError(f"unknown stage {stage!r}; stages are {self._names}")
        start, share = self._starts[stage], self._shares[stage]

        def progress(fraction: float, message: str = "") -> None:
            if self._cancel is not None:
                self._cancel.raise_if_cancelled()
            fraction = min(max(float(fraction), 0.0), 1.0)
            self.overall = max(self.overall, start + share * fraction)
            self._emit(stage, message, force=fraction >= 1.0)

        return progress

    @contextmanager
    def stage(self, name: str) -> Iterator[ProgressCallback]:
        """Run one stage: yields its callback, records its wall time, marks it done."""
        progress = self.callback(name)
        if self._t0 is None:
            self._t0 = self._clock()
        started = self._clock()
        progress(0.0, "")
        try:
            yield progress
        finally:
            self.timings_s[name] = self._clock() - started
        progress(1.0, "done")

    def close(self) -> None:
        """Close the sink (ends the terminal bar)."""
        if self._sink is not None:
            self._sink.close()
