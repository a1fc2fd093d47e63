"""The server processes behind the CLI: ``api``, ``worker``, ``run`` (both in one), ``migrate``, ``doctor``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from imgpipe.config import MemoryBrokerSettings, Settings
from imgpipe.heap import keep_heap
from imgpipe.helper_threads import helper_pool
from imgpipe.logs import configure_logging

__all__ = ["main"]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: imgpipe decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        print(f"imgpipe: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    fmt = settings.log_format if settings.log_format != "auto" else ("console" if sys.stdout.isatty() else "json")
    configure_logging(settings.log_level, fmt)
    command = args.command
    if command in ("api", "worker", "run"):
        keep_heap(settings.keep_heap_mb * 1024 * 1024)
    if command in ("api", "worker") and isinstance(settings.broker, MemoryBrokerSettings):
        print(
            f"imgpipe {command}: IMGPIPE_BROKER_URL=memory:// only works inside one process; "
            "use `imgpipe run`, or point IMGPIPE_BROKER_URL at RabbitMQ (amqp://...).",
            file=sys.stderr,
        )
        return 2
    runners: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "api": lambda: _api(settings),
        "worker": lambda: _worker(settings),
        "run": lambda: _run(settings, migrate=not args.no_migrate),
        "migrate": lambda: _migrate(settings),
        "doctor": lambda: _doctor(settings, as_json=args.json),
    }
    return _asyncio_run(runners[command]())


def _asyncio_run(coro: Coroutine[Any, Any, int]) -> int:
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):  # uvloop is optional (not on Windows)
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        # asyncio.to_thread's pool: fsyncs, renames and the probe, off the event loop's thread.
        runner.get_loop().set_default_executor(helper_pool(name="imgpipe"))
        return runner.run(coro)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _server(settings: Settings, app: Any) -> _Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
        # Behind a TLS-terminating proxy, absolute URLs must say https and the public host.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    return _Server(config)


async def _serve_until(server: _Server, stop: asyncio.Event, *, banner: str | None = None) -> bool:
    """Serve until ``stop``; False if the server could not start (port taken...)."""
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn offers no "started" event
        await asyncio.sleep(0.05)
    if not server.started:
        with contextlib.suppress(SystemExit, Exception):
            await task
        return False
    if banner:
        print(banner, flush=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopper.cancel()
    with contextlib.suppress(SystemExit):
        await task
    return True


async def _api(settings: Settings) -> int:
    from imgpipe.api.app import create_app

    stop = _stop_on_signals()
    ok = await _serve_until(_server(settings, create_app(settings)), stop)
    return 0 if ok else 1


async def _worker(settings: Settings) -> int:
    from imgpipe.bootstrap import build_kernel, build_services, make_worker

    stop = _stop_on_signals()
    async with build_services(settings) as services, build_kernel(settings) as kernel:
        await make_worker(services, kernel).run(stop)
    return 0


async def _run(settings: Settings, *, migrate: bool) -> int:
    from imgpipe.api.app import create_app
    from imgpipe.bootstrap import build_kernel, build_services, make_worker

    embedded_queue = isinstance(settings.broker, MemoryBrokerSettings)
    with _exclusive(settings.data_dir) if embedded_queue else contextlib.nullcontext():
        stop = _stop_on_signals()
        async with build_services(settings, migrate=migrate, listen=True) as services, build_kernel(settings) as kernel:
            worker_stop = asyncio.Event()
            # With the in-process queue no other process can hold a job, so every
            # unfinished job left by a crash is taken back at once.
            worker = asyncio.create_task(
                make_worker(services, kernel).run(worker_stop, recover_everything=embedded_queue)
            )
            server = _server(settings, create_app(settings, services=services))
            banner = f"imgpipe is running at {settings.public_origin}  (Ctrl-C to stop)"
            ok = await _serve_until(server, stop, banner=banner)
            worker_stop.set()
            await worker
    return 0 if ok else 1


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One embedded instance per data folder: two would each think they own every job."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # "a", not "w": a refused second instance must not wipe the first one's pid.
    with open(data_dir / ".imgpipe.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(f"imgpipe run: another instance is already using {data_dir.resolve()}")
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


async def _migrate(settings: Settings) -> int:
    from imgpipe.adapters.db.migrate import upgrade

    await upgrade(settings.database.url)
    print("database is at the newest revision", flush=True)
    return 0


async def _doctor(settings: Settings, *, as_json: bool) -> int:
    from imgpipe.doctor import examine

    report = await examine(settings)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for section, entries in report.items():
            print(f"{section}:")
            for name, value in entries.items():
                print(f"  {name:<22} {value}")
    checks = report["checks"].values()
    return 0 if all(v == "ok" for v in checks) else 1
