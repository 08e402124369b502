"""One progress display across stages, with ETA, per-stage timings and cooperative cancel."""

from __future__ import annotations

import io

import pytest

from Wonder3DMedLib.errors import Cancelled
from Wonder3DMedLib.progress import CancelToken, StageProgress, TerminalProgress, WorkerProgressLines


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_stage_fractions_map_to_one_overall_bar():
    stream = io.StringIO()
    clock = FakeClock()
    tracker = StageProgress([("prepare", 1), ("views", 2), ("mesh", 1)], WorkerProgressLines(stream),
                            min_interval_s=0.0, clock=clock)
    with tracker.stage("prepare") as progress:
        clock.now = 2.0
        progress(0.5, "windowing")
        assert tracker.overall == pytest.approx(0.125)
    with tracker.stage("views") as progress:
        clock.now = 6.0
        progress(0.5, "step 25/50")
        assert tracker.overall == pytest.approx(0.5)
    assert tracker.timings_s == {"prepare": 2.0, "views": 4.0}
    lines = stream.getvalue().splitlines()
    assert lines[1] == "W3DM:PROGRESS 0.1250 14 prepare windowing"
    assert "W3DM:PROGRESS 0.5000 6 views step 25/50" in lines
    assert lines[-1].startswith("W3DM:PROGRESS 0.7500") and lines[-1].endswith("views done")


def test_progress_never_goes_backwards_and_clamps():
    tracker = StageProgress([("only", 1)])
    progress = tracker.callback("only")
    progress(0.6)
    progress(0.2)
    progress(7.0)
    assert tracker.overall == 1.0


def test_cancel_stops_work_inside_a_stage_and_records_its_time():
    token = CancelToken()
    tracker = StageProgress([("mesh", 1)], cancel=token)
    done = []
    with pytest.raises(Cancelled):
        with tracker.stage("mesh") as progress:
            for step in range(10):
                if step == 3:
                    token.cancel()
                progress(step / 10, "")
                done.append(step)
    assert done == [0, 1, 2]
    assert "mesh" in tracker.timings_s


def test_cancel_file_signals_across_processes(tmp_path):
    token = CancelToken(tmp_path / "cancel")
    assert not token.cancelled
    (tmp_path / "cancel").touch()
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_bar_shows_stage_and_message():
    stream = _Terminal()
    tracker = StageProgress([("diffusion", 1)], TerminalProgress(stream), min_interval_s=0.0)
    with tracker.stage("diffusion") as progress:
        progress(0.5, "step 25/50")
    tracker.close()
    text = stream.getvalue()
    assert "diffusion" in text and "step 25/50" in text and "100%" in text and "\r" in text


def test_logs_get_plain_lines_per_stage_and_tenth():
    stream = io.StringIO()
    tracker = StageProgress([("views", 1), ("mesh", 1)], TerminalProgress(stream), min_interval_s=0.0)
    with tracker.stage("views") as progress:
        for step in range(1, 51):
            progress(step / 50, f"step {step}/50")
    with tracker.stage("mesh") as progress:
        progress(0.5, "fusing")
    tracker.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and all(line.startswith("[") for line in lines)
    assert lines[0].startswith("[  0%] views") and ": " not in lines[0].split(" (")[0] and any(line.startswith("[ 50%] views: step 50/50") for line in lines)
    assert any(line.startswith("[ 75%] mesh: fusing") for line in lines)
    assert 6 <= len(lines) <= 12, "one line per tenth and per stage change, not one per update"
    quiet = io.StringIO()
    hidden = StageProgress([("views", 1)], TerminalProgress(quiet, disable=True), min_interval_s=0.0)
    with hidden.stage("views") as progress:
        progress(0.5, "half")
    hidden.close()
    assert quiet.getvalue() == ""


def test_bad_stage_definitions_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        StageProgress([("a", 0)])
    with pytest.raises(ValueError, match="unique"):
        StageProgress([("a", 1), ("a", 2)])
    with pytest.raises(KeyError, match="unknown stage"):
        StageProgress([("a", 1)]).callback("b")
