"""The peer, side by side: thumbor (its own virtualenv, file loader, ``fit-in/256x256``, two processes) against
imgpipe's embedded pipeline, class by class, on the same cores, in alternating order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.corpus import Corpus
from bench.http import client
from bench.meters import Meter
from bench.pipeline import run_workload
from bench.procs import Proc, free_port, wait_for_http
from bench.renderers import clean_env
from bench.stacks import embedded_stack

__all__ = ["THUMBOR_PINS", "THUMBOR_VENV", "ensure_thumbor", "measure_peer"]

ROOT = Path(__file__).resolve().parent.parent
THUMBOR_VENV = ROOT / "bench" / ".cache" / "thumbor-venv"
# What installs on Python 3.11 here; pillow-heif gives thumbor HEIC, as imgpipe has it.
THUMBOR_PINS = ["thumbor==7.8.0", "pillow-heif==1.8.1"]
Log = Callable[[str], None]


def ensure_thumbor(*, install: bool, log: Log) -> Path | None:
    """The thumbor executable, installing it into its own virtualenv first if allowed; None if absent."""
    exe = THUMBOR_VENV / "bin" / "thumbor"
    if exe.exists() or not install:
        return exe if exe.exists() else None
    log(f"installing {' '.join(THUMBOR_PINS)} into {THUMBOR_VENV}")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(THUMBOR_VENV)], check=True, capture_output=True)
        pip = [str(THUMBOR_VENV / "bin" / "pip"), "install", "--quiet", *THUMBOR_PINS]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"thumbor could not be installed: {exc}")
        return None
    return exe


def thumbor_version(exe: Path) -> str:
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip()


def _start_thumbor(exe: Path, corpus: Corpus, work: Path, index: int) -> tuple[Proc, str]:
    """One single-process thumbor on its own port."""
    conf = work / "thumbor.conf"
    conf.write_text(
        "\n".join(
            [
                "LOADER = 'thumbor.loaders.file_loader'",
                f"FILE_LOADER_ROOT_PATH = {str(corpus.root)!r}",
                "STORAGE = 'thumbor.storages.no_storage'",
                "RESULT_STORAGE = None",
                "ALLOW_UNSAFE_URL = True",
                "QUALITY = 80",
                "AUTO_WEBP = False",
                "",
            ]
        )
    )
    port = free_port()
    args = [str(exe), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf), "--processes", "1"]
    proc = Proc(args, clean_env(), work / f"thumbor-{index}.log").start()  # the kernel's malloc tunable too
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthcheck", proc)
    return proc, url


def _thumbor_path(name: str) -> str:
    # The same output as imgpipe's: JPEG q80 when opaque, WebP with alpha otherwise.
    fmt = "webp" if "rgba" in name else "jpeg"
    return f"/unsafe/fit-in/256x256/filters:format({fmt}):quality(80)/{name}"


async def _hammer(urls: list[str], names: list[str], seconds: float, concurrency: int) -> tuple[int, int, float]:
    """GET thumbnails for ``seconds``, ``concurrency`` requests in flight spread evenly over ``urls``.

    (ok, failed, elapsed). One port per thumbor process, each getting the same share of the
    connections, as a load balancer would: thumbor's own ``--processes`` shares one listening
    socket, and a burst of keep-alive connections often lands on one process, leaving the
    other core idle (measured here: the same class at 100 or 205 images/s from run to run).
    """
    ok = failed = 0
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    per_url = max(1, concurrency // len(urls))
    loops = per_url * len(urls)
    # The same lean client that drives imgpipe: neither side pays more for the harness.
    async with contextlib.AsyncExitStack() as stack:
        webs = [await stack.enter_async_context(client(url, per_url)) for url in urls]

        async def loop(k: int) -> None:
            nonlocal ok, failed
            web, i = webs[k % len(webs)], k
            while time.monotonic() < deadline or ok + failed < len(names):
                response = await web.request("GET", _thumbor_path(names[i % len(names)]))
                good = response.status == 200 and response.headers.get("content-type", "").startswith("image/")
                ok, failed = ok + good, failed + (not good)
                i += loops

        await asyncio.gather(*(loop(k) for k in range(loops)))
    return ok, failed, time.monotonic() - t0


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def measure_peer(
    corpus: Corpus, exe: Path, kernel_ips: dict[str, dict[str, float]], *, work: Path, seconds: float, log: Log
) -> dict[str, Any]:
    """Per class, each side twice, A B B A (the order flips from class to class); rates and CPU are the mean."""
    cores = len(os.sched_getaffinity(0))
    by_class = corpus.by_class()
    out: dict[str, Any] = {"version": thumbor_version(exe), "processes": cores, "rounds": 2, "classes": {}}
    thumbors = [_start_thumbor(exe, corpus, work, i) for i in range(cores)]
    urls = [url for _, url in thumbors]
    try:
        with embedded_stack(work, cores) as stack:
            for n, (cls, items) in enumerate(by_class.items()):
                names = [Path(i.path).name for i in items]
                rate = kernel_ips.get(cls, {}).get("imgpipe", 10.0)
                count = max(8, min(80, round(rate * seconds)))
                runs: dict[str, list[tuple[float | None, int, float]]] = {"thumbor": [], "imgpipe": []}
                run_process_ms: list[tuple[float, float]] = []  # the ``run`` process alone (API and worker): CPU, OS
                first, second = ("thumbor", "imgpipe") if n % 2 == 0 else ("imgpipe", "thumbor")
                for who in (first, second, second, first):
                    if who == "thumbor":
                        meter = Meter(lambda: {"thumbor": [p for proc, _ in thumbors for p in _tree(proc.pid)]})
                        with meter:
                            ok, failed, elapsed = asyncio.run(_hammer(urls, names, seconds, 2 * cores))
                        assert meter.result is not None
                        cpu_ms = meter.result.cpu.get("thumbor", 0.0) * 1000 / max(1, ok + failed)
                        runs["thumbor"].append((ok / elapsed if ok else None, failed, cpu_ms))
                    else:
                        copies = max(1, count // len(items))
                        files = [(Path(i.path).name, Path(i.path).read_bytes()) for _ in range(copies) for i in items]
                        result = run_workload(stack, files)
                        cpu = result["cpu_ms_per_image"]
                        cpu_ms = cpu.get("api", 0.0) + cpu.get("kernel", 0.0)
                        runs["imgpipe"].append((result["steady_images_per_s"], result["failed"], cpu_ms))
                        in_os = result["system_s"].get("api", 0.0) * 1000 / max(1, result["n"])
                        run_process_ms.append((cpu.get("api", 0.0), in_os))
                row: dict[str, Any] = {}
                for who, done in runs.items():
                    rates = [r for r, _, _ in done if r is not None]
                    row[f"{who}_ips"] = sum(rates) / len(rates) if len(rates) == len(done) else None
                    row[f"{who}_ips_runs"] = [r for r, _, _ in done]
                    row[f"{who}_failed"] = sum(f for _, f, _ in done)
                    row[f"{who}_cpu_ms"] = sum(c for _, _, c in done) / len(done)
                row["kernel_ips"] = kernel_ips.get(cls, {}).get("imgpipe")
                row["imgpipe_run_cpu_ms"] = sum(c for c, _ in run_process_ms) / len(run_process_ms)
                row["imgpipe_run_system_ms"] = sum(s for _, s in run_process_ms) / len(run_process_ms)
                row["imgpipe_run_cpu_ms_runs"] = [round(c, 2) for c, _ in run_process_ms]
                row["bytes_per_image"] = sum(i.bytes for i in items) / len(items)
                out["classes"][cls] = row
                log(f"peer: {cls}: imgpipe {row['imgpipe_ips'] or 0:.1f}/s, thumbor {row['thumbor_ips'] or 0:.1f}/s")
    finally:
        for proc, _ in thumbors:
            proc.stop()
    return out
