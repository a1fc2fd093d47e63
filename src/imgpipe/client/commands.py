"""Client subcommands of the ``imgpipe`` script: upload, status, get and ls against a running API."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.filesize import decimal

from imgpipe.client.files import expand
from imgpipe.client.http import DEFAULT_API_URL, ApiClient, ClientError, LocalError
from imgpipe.client.render import job_table, jobs_table, print_json, shown_path, stderr_console, stdout_console
from imgpipe.client.upload import upload_files

__all__ = ["add_client_commands", "run_client_command"]

_EXIT_STATUS = """\
exit status: 0 success; 1 the server refused something, or a job FAILED; 2 bad arguments
or the server could not be reached."""

Handler = Callable[[argparse.Namespace, ApiClient], int]


def add_client_commands(sub: Any) -> None:
    """Register the client subcommands on the ``imgpipe`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        metavar="URL",
        help=f"the imgpipe API to talk to (default: $IMGPIPE_API_URL, else {DEFAULT_API_URL})",
    )

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            parents=[common],
            help=help_,
            description=help_[:1].upper() + help_[1:] + ".",
            epilog=_EXIT_STATUS,
        )
        parser.set_defaults(client_handler=handler)
        return parser

    upload = add("upload", _upload, "upload images (files, globs or folders) and optionally wait for their thumbnails")
    upload.add_argument("files", nargs="+", metavar="FILE", help="a file, a glob such as 'shots/*.jpg', or a folder")
    upload.add_argument("--wait", action="store_true", help="follow every job until it is DONE or FAILED")
    upload.add_argument("--json", action="store_true", help="print a JSON list of results to stdout, nothing else")

    status = add("status", _status, "show a job's status, metadata and variants")
    status.add_argument("id", type=_job_id, metavar="ID", help="the job id")
    status.add_argument("--wait", action="store_true", help="wait until the job is DONE or FAILED")
    status.add_argument("--json", action="store_true", help="print the job as JSON")

    get = add("get", _get, "download a variant of a job")
    get.add_argument("id", type=_job_id, metavar="ID", help="the job id")
    get.add_argument("--variant", type=_variant, default="thumbnail", help="original or thumbnail (default: thumbnail)")
    get.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file or folder to write to, '-' for stdout (default: ID-VARIANT.EXT in the current folder)",
    )
    get.add_argument("--wait", action="store_true", help="wait for the job to finish first")

    ls = add("ls", _ls, "list recent jobs, newest first")
    ls.add_argument("--limit", type=_positive, default=20, metavar="N", help="how many jobs (default: 20)")
    ls.add_argument("--cursor", help="continue after a previous listing (its next_cursor)")
    ls.add_argument("--json", action="store_true", help="print {items, next_cursor} as JSON")


def run_client_command(args: argparse.Namespace) -> int:
    handler: Handler | None = getattr(args, "client_handler", None)
    if handler is None:
        print(f"imgpipe: unknown command {args.command!r}", file=sys.stderr)
        return 2
    api_url = args.api or os.environ.get("IMGPIPE_API_URL") or DEFAULT_API_URL
    if "://" not in api_url:
        api_url = f"http://{api_url}"  # "localhost:8000" is what people type
    try:
        with ApiClient(api_url) as client:
            return handler(args, client)
    except ClientError as exc:
        stderr_console().print(f"imgpipe: {exc}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        print("imgpipe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`imgpipe ls | head`): silence the flush at exit, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# --- the commands ---------------------------------------------------------------------------


def _upload(args: argparse.Namespace, client: ApiClient) -> int:
    files = expand(args.files)
    if not files:
        raise LocalError("nothing to upload: the folders hold no regular, non-hidden files")
    return upload_files(client, files, wait=args.wait, as_json=args.json)


def _status(args: argparse.Namespace, client: ApiClient) -> int:
    if args.wait:
        with stderr_console().status("waiting for the job to finish…"):
            job = client.follow(args.id)
    else:
        job = client.job(args.id)
    if args.json:
        print_json(job)
    else:
        stdout_console().print(job_table(job))
    return 1 if job["status"] == "FAILED" else 0


def _get(args: argparse.Namespace, client: ApiClient) -> int:
    if args.wait:
        with stderr_console().status("waiting for the job to finish…"):
            client.follow(args.id)
    if args.output == "-":
        if sys.stdout.isatty():
            raise LocalError("refusing to write image bytes to a terminal: redirect them, or give -o FILE")
        client.download(args.id, args.variant, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    target = Path(args.output) if args.output else Path.cwd()
    try:
        target = _save(client, args.id, args.variant, target)
    except OSError as exc:
        raise LocalError(f"cannot write {target}: {exc.strerror or exc}") from None
    size = target.stat().st_size
    stderr_console().print(f"saved {args.variant} of {args.id} to {shown_path(target)} ({decimal(size)})", markup=False)
    return 0


def _save(client: ApiClient, job_id: UUID, variant: str, target: Path) -> Path:
    """Download into ``target`` (a file, or a folder to name the file in); return the file written."""
    folder = target if target.is_dir() else target.parent
    # Write beside the target and rename at the end: a failed download leaves no half file behind.
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".imgpipe-", suffix=".part", delete=False) as part:
        try:
            headers = client.download(job_id, variant, part)
        except BaseException:
            part.close()
            os.unlink(part.name)
            raise
    if target.is_dir():
        target = target / f"{job_id}-{variant}.{_extension(headers.get('content-disposition', ''))}"
    # A temporary file is private (0600); the saved one gets the usual mode under the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(part.name, 0o666 & ~umask)
    os.replace(part.name, target)
    return target


def _ls(args: argparse.Namespace, client: ApiClient) -> int:
    items: list[dict[str, Any]] = []
    cursor: str | None = args.cursor
    while len(items) < args.limit:
        page = client.page(limit=min(100, args.limit - len(items)), cursor=cursor)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    if args.json:
        print_json({"items": items, "next_cursor": cursor})
        return 0
    if not items:
        stderr_console().print("no jobs yet")
        return 0
    stdout_console().print(jobs_table(items))
    if cursor:
        stderr_console().print(f"more: imgpipe ls --limit {args.limit} --cursor {cursor}", markup=False, soft_wrap=True)
    return 0


# --- argument types ---------------------------------------------------------------------------


def _job_id(text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a job id: {text!r}") from None


def _variant(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", text):
        raise argparse.ArgumentTypeError(f"not a variant name: {text!r}")
    return text


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _extension(content_disposition: str) -> str:
    # The API names variants "<id>-<type>.<ext>"; take the extension only, and only if it is tame.
    found = re.search(r'filename="?[^";]*\.([A-Za-z0-9]{1,5})"?', content_disposition)
    return found.group(1).lower() if found else "bin"
