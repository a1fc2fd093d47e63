"""Each way of making a 256 px thumbnail that the harness times: imgpipe's kernel and the reference tools."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["TOOLS", "available", "clean_env", "prepare", "time_one", "vipsthumbnail_batch"]

# tool -> (what it is, formats it takes, the binary it needs)
TOOLS: dict[str, tuple[str, str, str | None]] = {
    "imgpipe": ("imgpipe's kernel, in process: probe, decode, fit 256x256, upright, sRGB, encode", "*", None),
    "pillow": ("Pillow `Image.thumbnail((256, 256))` (draft mode for JPEG), then save JPEG/WebP q80", "*", None),
    "vipsthumbnail": (
        "`vipsthumbnail -s 256x256` one process per file (the CLI's start-up included)",
        "*",
        "vipsthumbnail",
    ),
    "vipsthumbnail-batch": (
        "`vipsthumbnail -s 256x256 f1 f2 ...` one process per class, per image",
        "*",
        "vipsthumbnail",
    ),
    "djpeg": (
        "`djpeg -scale 1/8` to /dev/null: libjpeg-turbo's 1/8 decode alone, one process per file",
        "jpeg",
        "djpeg",
    ),
    "tjbench": ("`tjbench -scale 1/8`: the same decode in a loop inside one process, no start-up", "jpeg", "tjbench"),
}

_cache: dict[str, bytes] = {}


def available(tool: str) -> bool:
    binary = TOOLS[tool][2]
    return binary is None or shutil.which(binary) is not None


def takes(tool: str, fmt: str) -> bool:
    formats = TOOLS[tool][1]
    return formats == "*" or fmt == formats


def prepare() -> None:
    """One decode thread everywhere, no caches: the kernel's own configuration, shared by the Pillow reference."""
    import pillow_heif

    from imgpipe.imaging import kernel

    kernel.configure(threads=1)
    pillow_heif.register_heif_opener()


def _data(path: str) -> bytes:
    if path not in _cache:
        _cache[path] = Path(path).read_bytes()
    return _cache[path]


def _imgpipe(path: str, out: Path) -> None:
    from imgpipe.imaging import kernel
    from imgpipe.imaging.types import Limits, VariantSpec

    kernel.render(_data(path), VariantSpec(), Limits())


def _pillow(path: str, out: Path) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(_data(path)))
    image.thumbnail((256, 256))
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image.convert("RGBA").save(buffer, "WEBP", quality=80)
    else:
        image.convert("RGB").save(buffer, "JPEG", quality=80)


def _vips_output(path: str, out: Path) -> str:
    ext = "webp" if "rgba" in Path(path).name else "jpg"
    return f"{out}/%s.{ext}[Q=80,strip]"


def clean_env() -> dict[str, str]:
    """The environment imgpipe's kernel processes run in (its malloc tunable), for every tool alike, without
    VIPSHOME: pyvips-binary's libvips sets it (to its build prefix) when it loads, and Debian's
    vipsthumbnail would then look for its loader modules (HEIF/AVIF) there and not find them."""
    from imgpipe.worker.kernel_pool import child_env

    return {k: v for k, v in child_env().items() if k != "VIPSHOME"}


def _run(args: list[str]) -> None:
    env = {**clean_env(), "VIPS_CONCURRENCY": "1"}
    done = subprocess.run(args, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')[-300:]}")


def _vipsthumbnail(path: str, out: Path) -> None:
    _run(["vipsthumbnail", path, "-s", "256x256", "-o", _vips_output(path, out)])


def _djpeg(path: str, out: Path) -> None:
    _run(["djpeg", "-scale", "1/8", "-outfile", os.devnull, path])


_RENDER: dict[str, Callable[[str, Path], None]] = {
    "imgpipe": _imgpipe,
    "pillow": _pillow,
    "vipsthumbnail": _vipsthumbnail,
    "djpeg": _djpeg,
}


def time_one(tool: str, path: str, out: Path, pixels: int) -> float:
    """Seconds for one image. tjbench times its own loop; everything else is timed here, wall clock."""
    if tool == "tjbench":
        return _tjbench(path, pixels)
    if tool == "vipsthumbnail-batch":
        raise ValueError("time vipsthumbnail-batch with vipsthumbnail_batch()")
    render = _RENDER[tool]
    t0 = time.perf_counter()
    render(path, out)
    return time.perf_counter() - t0


def vipsthumbnail_batch(paths: list[str], out: Path) -> float:
    """Seconds per image when one vipsthumbnail process makes all of ``paths``."""
    args = ["vipsthumbnail", *paths, "-s", "256x256", "-o", _vips_output(paths[0], out)]
    t0 = time.perf_counter()
    _run(args)
    return (time.perf_counter() - t0) / len(paths)


_TJ_LINE = re.compile(r"^\S+\s+\(\w+\)\s+\S+\s+\S+\s+\d+\s+\d+\s+\S+\s+\S+\s+([\d.]+)\s*$", re.M)


def _tjbench(path: str, pixels: int) -> float:
    args = ["tjbench", path, "-scale", "1/8", "-quiet", "-nowrite", "-benchtime", "0.1", "-warmup", "0.02"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    found = _TJ_LINE.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"tjbench failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    megapixels_per_second = float(found[-1])  # counted on the full-size image
    return pixels / 1e6 / megapixels_per_second
