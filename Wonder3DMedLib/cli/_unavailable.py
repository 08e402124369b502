"""The answer of a subcommand whose stage is not part of this build yet."""

from __future__ import annotations

import argparse
import sys

__all__ = ["not_available"]


def not_available(args: argparse.Namespace) -> int:
    """Say plainly that the subcommand is not implemented yet; exit code 3."""
    print(
        f"wonder3dmed {args.command}: this stage is not part of this build yet "
        "(see `wonder3dmed --help` for what is available)",
        file=sys.stderr,
    )
    return 3
