"""How the client shows jobs to people: rich tables and short phrases. Nothing here talks to the server."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from imgpipe.client.http import Job

__all__ = [
    "dimensions",
    "job_table",
    "jobs_table",
    "print_json",
    "shown_path",
    "status_style",
    "status_text",
    "stderr_console",
    "stdout_console",
    "thumbnail_of",
    "when",
]

_STATUS_STYLE = {"PENDING": "yellow", "PROCESSING": "cyan", "DONE": "green", "FAILED": "bold red"}


def print_json(value: Any) -> None:
    """Machine-readable output: the only thing a ``--json`` command writes to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def status_style(status: str) -> str:
    return _STATUS_STYLE.get(status, "bold red")


def status_text(status: str) -> Text:
    return Text(status, style=status_style(status))


def dimensions(item: dict[str, Any] | None, *, size: bool = True) -> str:
    """'JPEG 1200×1800, 352.7 kB' (or without the size) for an original or a variant."""
    if not item:
        return ""
    kind = (item.get("format") or item.get("content_type", "").removeprefix("image/")).upper()
    text = f"{kind} {item['width']}×{item['height']}"
    return f"{text}, {decimal(item['bytes'])}" if size else text


def when(stamp: str | None, *, seconds: bool = True) -> str:
    if not stamp:
        return ""
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def shown_path(path: Path) -> str:
    """A path as the user would type it from here: relative when it lies below the current folder."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def thumbnail_of(job: Job) -> dict[str, Any] | None:
    return next((v for v in job.get("variants", []) if v["type"] == "thumbnail"), None)


def job_table(job: Job) -> RenderableType:
    """One job in full: a field list, then its variants."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    fields.add_row("Job", job["id"])
    fields.add_row("Status", status_text(job["status"]))
    original = job.get("original") or {}
    if original.get("filename"):
        fields.add_row("File", original["filename"])
    if original:
        fields.add_row("Original", dimensions(original))
    fields.add_row("Created", when(job.get("created_at")))
    if job.get("finished_at"):
        fields.add_row("Finished", when(job["finished_at"]))
    if job.get("attempts", 0) > 1:
        fields.add_row("Attempts", str(job["attempts"]))
    if job.get("error"):
        fields.add_row("Error", Text(job["error"]["message"], style="red"))
    if not job.get("variants"):
        return fields
    variants = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Variant", "Image", "Bytes"):
        variants.add_column(name, no_wrap=True)
    variants.add_column("URL", overflow="fold")
    for v in job["variants"]:
        variants.add_row(v["type"], dimensions(v, size=False), decimal(v["bytes"]), v["url"])
    outer = Table.grid()
    outer.add_row(fields)
    outer.add_row(variants)
    return outer


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Created", no_wrap=True)
    table.add_column("Job", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Image", no_wrap=True)
    table.add_column("File", overflow="fold")
    for job in jobs:
        original = job.get("original") or {}
        table.add_row(
            when(job.get("created_at"), seconds=False),
            job["id"],
            status_text(job["status"]),
            dimensions(original, size=False),
            original.get("filename") or "",
        )
    return table


def stdout_console() -> Console:
    # Piped into a file or grep, a table should not be squeezed into 80 columns and cut off.
    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    return Console(highlight=False, width=wide)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)
