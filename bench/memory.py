"""Peak RSS of a kernel process rendering one image, for the largest file of each class and the 25 MB PNG."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import Corpus, Item
from bench.kernel import child_command
from bench.renderers import clean_env

__all__ = ["measure_peak_rss"]

ROOT = Path(__file__).resolve().parent.parent


def _one(item: Item) -> dict[str, Any]:
    args, plan_file = child_command("rss", {"path": item.path})
    try:
        done = subprocess.run(args, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
    finally:
        plan_file.unlink(missing_ok=True)
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure_peak_rss(corpus: Corpus, *, log: Callable[[str], None]) -> dict[str, Any]:
    """class -> the largest file's {baseline, peak, growth, seconds} in a fresh process (one render each)."""
    largest = {
        cls: max(items, key=lambda i: i.width * i.height * 4 + i.bytes) for cls, items in corpus.by_class().items()
    }
    largest["big-png"] = corpus.big
    log(f"memory: peak RSS of one render in a fresh kernel process, {len(largest)} files")
    out: dict[str, Any] = {}
    for cls, item in largest.items():
        out[cls] = {"file": Path(item.path).name, "megapixels": item.megapixels, "bytes": item.bytes, **_one(item)}
    return out
