"""``python -m bench [--quick] [--out DIR]``: build the corpus, measure everything, write the report and charts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.budget import Budget

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny corpus and short runs: a smoke test, not numbers")
    parser.add_argument(
        "--out", type=Path, help="where benchmarks.md and bench/*.png go (default: docs/, quick: bench/results/quick/)"
    )
    parser.add_argument("--no-install", action="store_true", help="never run scripts/bench-deps nor install thumbor")
    parser.add_argument(
        "--skip", default="", help="comma list of sections to leave out: kernel,memory,pipeline,server,peer"
    )
    parser.add_argument("--from-json", type=Path, help="only rewrite the report from a results.json of an earlier run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or (ROOT / "bench" / "results" / "quick" if args.quick else ROOT / "docs")
    raw = (
        (args.out / "results.json")
        if args.out
        else ROOT / "bench" / "results" / f"{'quick' if args.quick else 'full'}.json"
    )
    if args.from_json:  # the raw results are that file already: only the report and charts are written
        _write(json.loads(args.from_json.read_text()), out, None)
        return 0
    t0 = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {message}", flush=True)

    command = "python -m bench" + (" --quick" if args.quick else "") + (f" --out {args.out}" if args.out else "")
    skip = {s for s in args.skip.split(",") if s}
    results = _measure(args.quick, skip, not args.no_install, log)
    results["meta"] = {
        "command": command if args.out or args.quick else "make bench",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.monotonic() - t0,
        "quick": args.quick,
    }
    _write(results, out, raw)
    log(f"wrote {out / 'benchmarks.md'} (raw results: {raw})")
    return 0


def _write(results: dict[str, Any], out: Path, raw: Path | None) -> None:
    from bench.charts import draw_charts
    from bench.report import render_report
    from bench.targets import judge

    targets = judge(results)
    results["targets"] = [t.row() for t in targets]
    if raw is not None:
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(results, indent=1, default=str))
    charts = draw_charts(results, out / "bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.md").write_text(render_report(results, targets, charts))


def _section(
    name: str,
    results: dict[str, Any],
    log: Callable[[str], None],
    run: Callable[[], Any],
    budget: Budget | None = None,
    scale: float = 1.0,
) -> None:
    """Run one section into ``results[name]``; its time goes to ``budget``, which paces the sections after it."""
    t0 = time.monotonic()
    try:
        results[name] = run()
    except Exception as exc:  # one broken section must not lose the others' numbers
        log(f"{name} failed: {exc}")
        traceback.print_exc()
        last = str(exc).strip().splitlines()[-1:] or [""]
        results["skipped"].append(f"{name}: failed ({type(exc).__name__}: {last[0][:300]})")
    if budget is not None:
        budget.record(name, time.monotonic() - t0, scale)


def _measure(quick: bool, skip: set[str], install: bool, log: Callable[[str], None]) -> dict[str, Any]:
    from bench.machine import describe
    from bench.scratch import work_folder

    if install and not quick:
        _system_tools(log)
    results: dict[str, Any] = {"machine": describe(), "skipped": []}
    with work_folder() as work:  # first: earlier runs' files are deleted long before a stack starts here
        _measure_in(work, results, quick, skip, install, log)
    return results


def _measure_in(
    work: Path, results: dict[str, Any], quick: bool, skip: set[str], install: bool, log: Callable[[str], None]
) -> None:
    from bench import memwarm
    from bench.corpus import build_corpus
    from bench.kernel import measure_kernel
    from bench.memory import measure_peak_rss
    from bench.peer import ensure_thumbor, measure_peer
    from bench.pipeline import measure_pipeline
    from bench.procs import AMQP_URL, PG_ADMIN_URL, reachable, start_s3_server
    from bench.scratch import file_creation_cost

    if not quick:
        measured = memwarm.measure()
        warmed = {**memwarm.warm(gigabytes=4), "reporting": memwarm.free_page_reporting()}
        results["machine"]["page-cache writes"] = memwarm.summary(measured, warmed)
    corpus = build_corpus(quick=quick, log=log)
    results["corpus"] = {
        "root": str(corpus.root.relative_to(ROOT)) if corpus.root.is_relative_to(ROOT) else str(corpus.root),
        "classes": corpus.classes,
        "items": [asdict(i) for i in corpus.items],
        "big": asdict(corpus.big),
        "sources": corpus.sources,
        "seconds_to_build": corpus.seconds_to_build,
    }
    budget = Budget()
    if "kernel" not in skip:
        # Four interleaved rounds: the median holds, and a contended host still finishes within ten minutes.
        rounds, phase = (2, 0.3) if quick else (4, 0.8)
        measure = partial(measure_kernel, corpus, rounds=rounds, phase_seconds=phase, log=log)
        _section("kernel", results, log, measure, budget)
    if "memory" not in skip:
        _section("memory", results, log, lambda: measure_peak_rss(corpus, log=log), budget)

    stacks = ["embedded"]
    if quick:
        results["skipped"].append("the server stack and thumbor: quick mode runs the embedded stack only")
    elif "server" in skip:
        results["skipped"].append("the server stack: --skip server")
    elif not (reachable(PG_ADMIN_URL, 5432) and reachable(AMQP_URL, 5672)):
        results["skipped"].append(f"the server stack: PostgreSQL ({PG_ADMIN_URL}) or RabbitMQ not reachable")
    else:
        stacks.append("server")
    created = file_creation_cost(work)
    results["machine"]["new file in the stacks' folder"] = (
        f"{created:.0f} CPU us, measured before the pipelines (`bench/scratch.py`)"
    )
    if "pipeline" not in skip:
        s3 = start_s3_server(work) if "server" in stacks else None
        scale = 1.0 if quick else _paced(budget, results, "pipeline", ["pipeline", "peer"], log)
        params = (
            {"passes": 2, "copies": 1, "idle_count": 3, "jpeg_count": 4, "upload_count": 10, "upload_seconds": 0.5}
            if quick
            else pipeline_params(scale)
        )
        try:
            run = partial(measure_pipeline, corpus, stacks=stacks, work=work, s3=s3, log=log, **params)
            _section("pipeline", results, log, run, budget, scale)
        finally:
            if s3 is not None:
                s3.proc.stop()
    if not quick and "peer" not in skip:
        installing = time.monotonic()
        exe = ensure_thumbor(install=install, log=log)
        budget.set_aside(time.monotonic() - installing)  # a first run builds thumbor's environment here
        if exe is None:
            results["skipped"].append("thumbor: not installed (run without --no-install)")
        else:
            ips = results.get("kernel", {}).get("multi_ips", {})
            seconds = 2.0 * _paced(budget, results, "peer", ["peer"], log)
            # What writing into the page cache costs at this point of the run: every upload stored pays it.
            before_peer = memwarm.measure(megabytes=128)
            _section("peer", results, log, lambda: measure_peer(corpus, exe, ips, work=work, seconds=seconds, log=log))
            if "peer" in results:
                results["peer"]["page_cache_ms_per_mb"] = before_peer["fresh_ms_per_mb"]


def pipeline_params(scale: float) -> dict[str, Any]:
    """The full run's pipeline settings, shrunk by ``scale`` (1.0: as set; down to ``budget.FLOOR``)."""
    return {
        "passes": 3,
        "copies": 2 if scale > 0.75 else 1,
        "idle_count": max(6, round(15 * scale)),
        "jpeg_count": max(36, round(96 * scale)),  # 32 per pass at full scale: per-run costs spread thin
        "upload_count": 10,
        "upload_seconds": 2.0,
    }


def _paced(budget: Budget, results: dict[str, Any], section: str, rest: list[str], log: Callable[[str], None]) -> float:
    """The scale ``section`` runs at, logged and kept for the report when it is below 1."""
    scale = budget.scale(rest)
    if scale < 1.0:
        log(f"{section}: this host runs slow for the ten minutes; it measures {scale:.2f} of its full settings")
        results.setdefault("paced", {})[section] = round(scale, 2)
    return scale


def _system_tools(log: Callable[[str], None]) -> None:
    """Run scripts/bench-deps when a reference tool or a wallpaper package is missing (it needs root)."""
    needed = ["djpeg", "tjbench", "vipsthumbnail"]
    wallpapers = Path("/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg")
    if all(shutil.which(t) for t in needed) and wallpapers.exists():
        return
    if os.geteuid() != 0:
        log("reference tools or wallpapers are missing; run `sudo scripts/bench-deps` for the full comparison")
        return
    log("installing the reference tools and wallpaper packages (scripts/bench-deps)")
    subprocess.run([str(ROOT / "scripts" / "bench-deps")], check=False)


if __name__ == "__main__":
    sys.exit(main())
