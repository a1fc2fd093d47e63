"""The report's PNG charts: throughput by format, latency distribution, memory over time (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw_charts"]


def draw_charts(results: dict[str, Any], folder: Path) -> list[str] | str:
    """Write the charts into ``folder``; the file names, or why there are none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (the `bench` extra): no charts"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, draw in (("throughput.png", _throughput), ("latency.png", _latency), ("memory.png", _memory)):
        fig = draw(plt, results)
        if fig is not None:
            fig.savefig(folder / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            made.append(name)
    return made


def _throughput(plt: Any, results: dict[str, Any]) -> Any:
    multi = results.get("kernel", {}).get("multi_ips", {})
    peer = results.get("peer", {}).get("classes", {})
    classes = list(multi) or list(peer)
    if not classes:
        return None
    series = {
        "imgpipe kernel": [multi.get(c, {}).get("imgpipe") for c in classes],
        "imgpipe embedded pipeline": [peer.get(c, {}).get("imgpipe_ips") for c in classes],
        "thumbor (2 processes)": [peer.get(c, {}).get("thumbor_ips") for c in classes],
        "Pillow thumbnail()": [multi.get(c, {}).get("pillow") for c in classes],
        "vipsthumbnail (batch)": [multi.get(c, {}).get("vipsthumbnail-batch") for c in classes],
    }
    series = {k: v for k, v in series.items() if any(x is not None for x in v)}
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(classes) * len(series) / 2 + 2))
    height = 0.8 / len(series)
    for n, (label, values) in enumerate(series.items()):
        ys = [i + n * height for i in range(len(classes))]
        ax.barh(ys, [v or 0 for v in values], height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(classes))], classes)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"images/s on all {results.get('kernel', {}).get('cores', '?')} cores (log scale)")
    ax.set_title("Throughput by format")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _latency(plt: Any, results: dict[str, Any]) -> Any:
    runs = results.get("pipeline", {}).get("runs", [])
    if not runs:
        return None
    fig, (idle, load) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        label = f"{run['stack']}, {run['concurrency']} kernel(s)"
        if "idle" in run:
            _ecdf(idle, run["idle"]["latencies_ms"], label)
        _ecdf(load, run["mix"]["latencies_ms"], label)
    idle.set_title(f"Idle stack: one {results['pipeline'].get('jpeg_class')} at a time")
    load.set_title("Saturated: one pass over the corpus uploaded at once, then the next")
    for ax in (idle, load):
        ax.set_xlabel("upload-to-DONE, ms (server-side timestamps)")
        ax.set_ylabel("fraction of jobs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _ecdf(ax: Any, values: list[float], label: str) -> None:
    if values:
        ordered = sorted(values)
        ax.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post", label=label)


def _memory(plt: Any, results: dict[str, Any]) -> Any:
    runs = [r for r in results.get("pipeline", {}).get("runs", []) if "upload_memory" in r]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.2 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs, strict=True):
        mix, upload = row
        series = run["mix"]["series"]
        for group in ("api", "worker", "kernel"):
            values = [s.get(group) for _, s in series]
            if any(values):
                label = "api + worker" if group == "api" and run["stack"] == "embedded" else group
                mix.plot([t for t, _ in series], [(v or 0) / 1e6 for v in values], label=label)
        passes = run["mix"].get("passes", 1) * results["pipeline"].get("copies", 1)
        mix.set_title(f"{run['stack']}, {run['concurrency']} kernels: RSS during {passes} passes over the corpus")
        up = run["upload_memory"]["series"]
        upload.plot([t for t, _ in up], [s.get("api", 0) / 1e6 for _, s in up], label="api", color="C0")
        upload.set_title(f"{run['stack']}: API RSS, {run['upload_memory']['uploads']} concurrent ~25 MB uploads")
        for ax in row:
            ax.set_xlabel("s")
            ax.set_ylabel("RSS, MB (kernel: sum of its processes)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
