"""A measuring child process: ``python -m bench.child single|multi|rss PLAN.json`` prints its results as JSON.

Timings run in children so that each starts clean (no libvips state from the
harness) and can be pinned to one core or run side by side on all of them.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import renderers

__all__ = ["main"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _single(plan: dict[str, Any]) -> dict[str, Any]:
    """Every (tool, image) once per round, in a new random order each round, on one pinned core."""
    os.sched_setaffinity(0, {plan["cpu"]})
    renderers.prepare()
    rng = random.Random(plan["seed"])
    units: list[tuple[str, list[dict[str, Any]]]] = [(t, [item]) for t, item in plan["pairs"]]
    units += [("vipsthumbnail-batch", items) for items in plan["batches"]]
    samples: list[dict[str, Any]] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-single-") as tmp:
        out = Path(tmp)
        seen: set[str] = set()
        for unit in units:  # warm-up: page cache, lazy library loads; each command-line tool once
            if unit[0] in ("imgpipe", "pillow") or unit[0] not in seen:
                _time(unit, out, errors)
                seen.add(unit[0])
        for round_no in range(plan["rounds"]):
            rng.shuffle(units)
            for unit in units:
                seconds = _time(unit, out, errors)
                tool, items = unit
                if seconds is not None:
                    row = {"tool": tool, "cls": items[0]["cls"], "path": items[0]["path"], "s": seconds}
                    samples.append({**row, "round": round_no})
    return {"samples": samples, "errors": errors}


def _time(unit: tuple[str, list[dict[str, Any]]], out: Path, errors: list[str]) -> float | None:
    """Seconds for one unit; a reference tool that fails is tried once more, then that sample is dropped."""
    tool, items = unit
    for _ in range(2):
        try:
            if tool == "vipsthumbnail-batch":
                return renderers.vipsthumbnail_batch(_batch([i["path"] for i in items]), out)
            return renderers.time_one(tool, items[0]["path"], out, items[0]["pixels"])
        except RuntimeError as exc:
            if tool == "imgpipe":
                raise
            errors.append(f"{tool} on {Path(items[0]['path']).name}: {str(exc)[:200]}")
    return None


def _batch(paths: list[str]) -> list[str]:
    """The class's files repeated to four images: vipsthumbnail's start-up spread as a batch job would."""
    return [paths[i % len(paths)] for i in range(max(4, len(paths)))]


def _multi(plan: dict[str, Any]) -> dict[str, Any]:
    """One tool over every class in turn, in phases that start at the same wall-clock time in every sibling."""
    renderers.prepare()
    tool = plan["tool"]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-multi-") as tmp:
        out = Path(tmp)
        for phase in plan["phases"]:
            paths = phase["paths"]
            start, end = plan["t0"] + phase["start"], plan["t0"] + phase["start"] + phase["seconds"]
            estimate = phase["estimate"]  # seconds per image: do not start one that would overrun the phase
            time.sleep(max(0.0, start - time.time()))
            count, busy, i = 0, 0.0, 0
            # The phase's first image is a warm-up, not counted: a format's first decode in a process
            # pays its library's set-up (a first 12 MP AVIF: 362 ms against 130 after), and a phase
            # holds only a few images of the slow formats.
            warm = False
            while time.time() + estimate <= end or count == 0:
                try:
                    if tool == "vipsthumbnail-batch":
                        batch = _batch(paths)
                        seconds, images = renderers.vipsthumbnail_batch(batch, out) * len(batch), len(batch)
                    else:
                        seconds, images = renderers.time_one(tool, paths[i % len(paths)], out, 0), 1
                except RuntimeError:
                    if tool == "imgpipe" or i > 3:
                        raise
                    seconds, images = 0.0, 0  # a flaky reference run: try again
                if warm:
                    busy, count = busy + seconds, count + images
                warm = warm or images > 0
                i += 1
            results[phase["cls"]] = {"count": count, "busy": busy}
    return {"phases": results}


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _tiny_like(path: str) -> bytes:
    """A 64x64 image in the same format as ``path``."""
    import io

    from PIL import Image

    fmt = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".avif": "AVIF", ".gif": "GIF"}.get(
        Path(path).suffix, "JPEG"
    )
    out = io.BytesIO()
    if Path(path).suffix == ".heic":
        import pillow_heif

        pillow_heif.from_pillow(Image.new("RGB", (64, 64), "grey")).save(out, format="HEIF")
    else:
        Image.new("RGB", (64, 64), "grey").save(out, fmt)
    return out.getvalue()


def _rss(plan: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of rendering one image in a fresh process that has already loaded the kernel."""
    from imgpipe.imaging import kernel
    from imgpipe.imaging.types import Limits, VariantSpec

    kernel.configure(threads=1)
    data = Path(plan["path"]).read_bytes()
    kernel.render(_tiny_like(plan["path"]), VariantSpec(), Limits())  # load the codec's libraries first
    before = _rss_bytes()
    t0 = time.perf_counter()
    kernel.render(data, VariantSpec(), Limits())
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    return {"baseline": before, "peak": peak, "growth": max(0, peak - before), "seconds": seconds}


def _peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries the peak of the process that
    started this one across exec (a vfork child execs from its parent's memory), so a child of a parent
    that once touched 4 GB reports 4 GB whatever it does itself."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _stages(plan: dict[str, Any]) -> dict[str, Any]:
    """Where the kernel's time goes, per file: header probe, decode and resize (run into memory), encode.

    Splitting the lazy libvips pipeline costs a copy, so the parts add up to a little more than a render.
    """
    import io

    from imgpipe.imaging import _pil, _vips, kernel
    from imgpipe.imaging.probe import inspect
    from imgpipe.imaging.types import ImageFormat, Limits, VariantSpec

    os.sched_setaffinity(0, {plan["cpu"]})
    kernel.configure(threads=1)
    spec, limits = VariantSpec(), Limits()
    per_file: dict[str, list[dict[str, float]]] = {}
    for cls, path in plan["files"]:
        data = Path(path).read_bytes()
        times: dict[str, list[float]] = {"probe": [], "decode_resize": [], "encode": []}
        for _ in range(plan["repeats"] + 1):
            t0 = time.perf_counter()
            header = inspect(io.BytesIO(data), limits)
            t1 = time.perf_counter()
            if header.info.format is ImageFormat.JPEG:  # the kernel's Pillow route (these JPEGs are YCbCr)
                small = _pil.fit_jpeg(_pil.open_jpeg(data, limits, header.orientation, spec), header.orientation, spec)
                t2 = time.perf_counter()
                _pil.encode_jpeg(small, spec)
            else:
                image = kernel._decode(data, header, spec, limits).copy_memory()
                t2 = time.perf_counter()
                _vips.encode(image, spec)
            t3 = time.perf_counter()
            for key, value in (("probe", t1 - t0), ("decode_resize", t2 - t1), ("encode", t3 - t2)):
                times[key].append(value * 1000)
        # Each file's median (warm-up dropped); a class's figure is the mean over its files, as in the one-core table.
        per_file.setdefault(cls, []).append({key: sorted(v[1:])[len(v[1:]) // 2] for key, v in times.items()})
    return {cls: {key: sum(f[key] for f in files) / len(files) for key in files[0]} for cls, files in per_file.items()}


def main(argv: list[str]) -> int:
    mode, plan_path = argv
    plan = json.loads(Path(plan_path).read_text())
    handlers = {"single": _single, "multi": _multi, "rss": _rss, "stages": _stages}
    print(json.dumps(handlers[mode](plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
