"""``imgpipe upload``: send files side by side, a progress bar each, then maybe follow each job to its end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from rich import box
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from imgpipe.client.http import ApiClient, ApiProblem, Job, Unreachable
from imgpipe.client.render import (
    dimensions,
    print_json,
    shown_path,
    status_style,
    status_text,
    stderr_console,
    stdout_console,
    thumbnail_of,
)

__all__ = ["Outcome", "upload_files"]

PARALLEL_UPLOADS = 4
_KEEP_ROWS_UP_TO = 10  # with more files, a file's bar disappears once the file is settled


@dataclass
class Outcome:
    """What became of one file: a job (maybe followed to its end), a refusal, or no answer at all."""

    file: Path
    job: Job | None = None
    problem: ApiProblem | None = None
    unreachable: Unreachable | None = None

    @property
    def failed(self) -> bool:
        return self.job is None or self.problem is not None or self.job["status"] == "FAILED"

    def as_json(self) -> dict[str, Any]:
        problem = self.problem.as_json() if self.problem else None
        if self.unreachable is not None:
            problem = {"status": None, "code": "unreachable", "detail": str(self.unreachable)}
        return {"file": str(self.file), "accepted": self.job is not None, "job": self.job, "problem": problem}


def upload_files(client: ApiClient, files: list[Path], *, wait: bool, as_json: bool) -> int:
    """Upload and report; exit status 0 all good, 1 a file refused or a job FAILED, 2 no server."""
    err = stderr_console()
    outcomes = [Outcome(path) for path in files]
    sizes = [_size(path) for path in files]
    stop = threading.Event()
    progress = Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[state]}"),
        console=err,
        disable=not err.is_terminal,
    )
    with progress:
        overall = progress.add_task(
            f"{len(files)} file{'s' if len(files) != 1 else ''}", total=sum(sizes) or 1, state=""
        )
        rows = [
            progress.add_task(_short(p.name), total=s or 1, state="waiting") for p, s in zip(files, sizes, strict=True)
        ]

        def send(i: int) -> None:
            if stop.is_set():
                return
            sent = _Counter(progress, (rows[i], overall))

            def show(state: str) -> None:
                progress.update(rows[i], state=state)

            try:
                _send_one(client, outcomes[i], wait=wait, on_sent=sent, on_state=show)
            except Unreachable as exc:
                outcomes[i].unreachable = exc
                stop.set()
            progress.advance(overall, max(0, sizes[i] - sent.total))
            progress.update(rows[i], completed=sizes[i] or 1, visible=len(files) <= _KEEP_ROWS_UP_TO)

        _run_on_daemon_threads([partial(send, i) for i in range(len(files))], PARALLEL_UPLOADS)

    lost = next((o.unreachable for o in outcomes if o.unreachable), None)
    for outcome in outcomes:
        if lost and outcome.job is None and outcome.problem is None:
            outcome.unreachable = lost
    if as_json:
        print_json([o.as_json() for o in outcomes])
    elif not lost or any(o.job or o.problem for o in outcomes):
        stdout_console().print(_summary(outcomes))
    if lost:
        err.print(f"imgpipe: {lost}", markup=False, highlight=False)
        return lost.exit_code
    return 1 if any(o.failed for o in outcomes) else 0


def _send_one(
    client: ApiClient,
    outcome: Outcome,
    *,
    wait: bool,
    on_sent: Callable[[int], None],
    on_state: Callable[[str], None],
) -> None:
    on_state("uploading")
    try:
        outcome.job = client.upload(outcome.file, on_sent)
        on_state(_state(outcome.job))
        if wait:
            outcome.job = client.follow(UUID(outcome.job["id"]), lambda job: on_state(_state(job)))
    except ApiProblem as exc:
        outcome.problem = exc
        on_state(f"[red]refused ({exc.status})" if outcome.job is None else f"[red]{escape(exc.detail)}")
    except OSError as exc:
        outcome.problem = ApiProblem(None, "unreadable_file", f"cannot read {outcome.file}: {exc.strerror or exc}")
        on_state("[red]unreadable")


def _state(job: Job) -> str:
    return f"[{status_style(job['status'])}]{job['status']}"


class _Counter:
    """Adds the bytes httpx reads to a file's bar and to the overall bar."""

    def __init__(self, progress: Progress, tasks: tuple[TaskID, ...]) -> None:
        self.progress = progress
        self.tasks = tasks
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n
        for task in self.tasks:
            self.progress.advance(task, n)


def _run_on_daemon_threads(work: list[Callable[[], None]], parallel: int) -> None:
    """Run ``work`` on a few daemon threads, so Ctrl-C ends the command at once, not after each long-poll."""
    lock = threading.Lock()
    queue = list(reversed(work))
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            try:
                item()
            except BaseException as exc:  # re-raised in the main thread: a bug must not vanish in a thread
                failures.append(exc)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(parallel, len(work)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _summary(outcomes: list[Outcome]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("File", overflow="fold")
    table.add_column("Result", no_wrap=True)
    table.add_column("Job", no_wrap=True)
    table.add_column("Details", overflow="fold")
    for o in outcomes:
        if o.job is None:
            answered = o.problem.status if o.problem else None
            result = Text(f"refused ({answered})" if answered else "not sent", style="red")
            detail = o.problem.detail if o.problem else str(o.unreachable or "")
            table.add_row(shown_path(o.file), result, "", detail)
            continue
        status = o.job["status"]
        thumb = thumbnail_of(o.job)
        if o.problem:
            detail = o.problem.detail
        elif status == "FAILED" and o.job.get("error"):
            detail = o.job["error"]["message"]
        elif thumb:
            detail = f"thumbnail {thumb['width']}×{thumb['height']}"
        else:
            detail = dimensions(o.job.get("original"))
        table.add_row(shown_path(o.file), status_text(status), o.job["id"], detail)
    return table


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
