"""The ``wonder3dmed`` command line: one subcommand per stage, plus the end-to-end job.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; heavy libraries are imported only when a subcommand runs,
so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS, __version__
from Wonder3DMedLib.errors import Cancelled, Wonder3DMedError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommands in the order ``--help`` lists them.
SUBCOMMANDS = ("demo", "reconstruct", "prepare", "views", "mesh", "compare", "doctor")

_DESCRIPTION = f"""\
Wonder3DMed: one medical image slice -> a 3D surface in patient (RAS) space.

The main job is `reconstruct`: it frames the object on a slice (prepare), generates
six views with Wonder3D multiview diffusion (views) or renders "oracle" views from a
reference segmentation, reconstructs a watertight surface (mesh), places it in RAS
millimetres over the slice and optionally compares it with a segmentation (compare).
`demo` runs that on real MRI shipped with a dependency; `doctor` checks this machine.

{NOT_FOR_DIAGNOSIS}
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wonder3dmed`` with every subcommand registered."""
    from importlib import import_module

    parser = argparse.ArgumentParser(
        prog="wonder3dmed",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `wonder3dmed <command> --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"wonder3dmed {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        import_module(f"Wonder3DMedLib.cli.{name}").register(subparsers)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a GUI's terminate, ``kill``), unwound like Ctrl-C so partial outputs are removed."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def interruption_exit_code(interruption: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C (for commands that report an interruption themselves)."""
    return 143 if isinstance(interruption, _Terminated) else 130


def main(argv: list[str] | None = None) -> int:
    """Run ``wonder3dmed`` and return its exit code.

    Exit codes: 0 success, 1 the command ran but found a problem (e.g. ``doctor``),
    2 bad input or usage (a message says what to change), 130 cancelled/interrupted,
    143 terminated (SIGTERM); on both, partial outputs are removed.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return code
    except _Terminated:
        print(f"wonder3dmed {args.command}: terminated", file=sys.stderr)
        return 143
    except (Cancelled, KeyboardInterrupt):
        print(f"wonder3dmed {args.command}: interrupted", file=sys.stderr)
        return 130
    except Wonder3DMedError as error:
        print(f"wonder3dmed {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`wonder3dmed doctor --json | head`): stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
