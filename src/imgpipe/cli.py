"""The ``imgpipe`` command: server processes (api, worker, run, migrate, doctor) and the client commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgpipe", description="Event-driven image upload and thumbnail pipeline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("api", help="serve the HTTP API (needs a real broker: amqp://)")
    sub.add_parser("worker", help="consume jobs and make variants (needs a real broker: amqp://)")
    run = sub.add_parser("run", help="API and workers in one process; embedded backends by default")
    run.add_argument("--no-migrate", action="store_true", help="do not apply database migrations first")
    sub.add_parser("migrate", help="apply the database migrations")
    doctor = sub.add_parser("doctor", help="report libvips/loader versions and whether each backend answers")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    from imgpipe.client.commands import add_client_commands

    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("api", "worker", "run", "migrate", "doctor"):
        from imgpipe import serve

        return serve.main(args)
    from imgpipe.client.commands import run_client_command

    return run_client_command(args)


if __name__ == "__main__":
    sys.exit(main())
