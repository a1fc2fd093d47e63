"""Client subcommands of the ``imgpipe`` script."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_client_commands", "run_client_command"]


def add_client_commands(sub: Any) -> None:
    """Register the client subcommands on the ``imgpipe`` parser."""


def run_client_command(args: argparse.Namespace) -> int:
    raise SystemExit(f"imgpipe: unknown command {args.command!r}")
