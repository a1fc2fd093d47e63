"""The targets of issue 5, each judged from the results: measured figures and PASS or MISS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.stats import ratio

__all__ = ["Target", "judge"]

MB = 1e6


@dataclass
class Target:
    what: str
    target: str
    measured: str
    verdict: str  # PASS, MISS, or "n/a" when it could not be measured here

    def row(self) -> dict[str, str]:
        return asdict(self)


def _check(what: str, target: str, values: dict[str, float | None], ok: Callable[[float], bool], fmt: str) -> Target:
    """One target over one or more measured values: PASS only if every value is there and passes."""
    shown = ", ".join(f"{k}: {'n/a' if v is None else _shown(v, fmt, ok)}" for k, v in values.items())
    found = [v for v in values.values() if v is not None]
    if not found:
        return Target(what, target, shown or "not measured", "n/a")
    verdict = "PASS" if len(found) == len(values) and all(ok(v) for v in found) else "MISS"
    return Target(what, target, shown, verdict)


def _shown(value: float, fmt: str, ok: Callable[[float], bool]) -> str:
    """``value`` in ``fmt``, with more decimals where that rounding would show a miss as a pass (0.3506 as 0.35)."""
    text = format(value, fmt)
    sign, _, places = fmt.removesuffix("f").partition(".")
    if ok(value) or not places.isdigit():
        return text
    digits = int(places)
    while ok(float(text)) and digits < 6:
        digits += 1
        text = format(value, f"{sign}.{digits}f")
    return text


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = results.get("pipeline", {}).get("runs", [])
    return runs


def _run(results: dict[str, Any], stack: str, concurrency: int | None = None) -> dict[str, Any] | None:
    found = [
        r for r in _runs(results) if r["stack"] == stack and (concurrency is None or r["concurrency"] == concurrency)
    ]
    return max(found, key=lambda r: r["concurrency"]) if found else None


def judge(results: dict[str, Any]) -> list[Target]:
    single = results.get("kernel", {}).get("single_ms", {})
    k = {cls: tools.get("imgpipe") for cls, tools in single.items()}
    ref = lambda cls, tool: single.get(cls, {}).get(tool)  # noqa: E731
    stacks = sorted({r["stack"] for r in _runs(results)})
    floors = {
        "djpeg": "baseline JPEG kernel vs the 1/8 decode floor, `djpeg -scale 1/8` (12 and 24 MP)",
        "tjbench": "the same against `tjbench -scale 1/8` (the decode alone, no process start-up)",
    }
    out = [
        *(
            _check(
                what,
                "≤ 1.4x",
                {f"{mp} MP": ratio(k.get(f"jpeg-base-{mp}mp"), ref(f"jpeg-base-{mp}mp", tool)) for mp in (12, 24)},
                lambda v: v <= 1.4,
                ".2f",
            )
            for tool, what in floors.items()
        ),
        _check(
            "kernel vs `vipsthumbnail` per file, baseline JPEG and PNG",
            "≤ 0.35x",
            {
                c: ratio(k.get(c), ref(c, "vipsthumbnail"))
                for c in ("jpeg-base-4mp", "jpeg-base-12mp", "jpeg-base-24mp", "png-rgb", "png-rgba")
            },
            lambda v: v <= 0.35,
            ".2f",
        ),
        _check(
            "kernel vs Pillow `thumbnail()` on PNG",
            "≤ 0.7x",
            {c: ratio(k.get(c), ref(c, "pillow")) for c in ("png-rgb", "png-rgba")},
            lambda v: v <= 0.7,
            ".2f",
        ),
        _check(
            "kernel vs Pillow `thumbnail()` on WebP",
            "≤ 0.6x",
            {"webp": ratio(k.get("webp"), ref("webp", "pillow"))},
            lambda v: v <= 0.6,
            ".2f",
        ),
    ]
    out.append(_scaling(results, stacks))
    out.append(_overhead(results, stacks))
    out.append(_idle_latency(results, stacks, k.get(results.get("pipeline", {}).get("jpeg_class", ""))))
    out.append(_worker_rss(results, stacks))
    out.append(_upload_rss(results, stacks))
    health = {s: (_run(results, s) or {}).get("mix", {}).get("health_ms", {}).get("p99") for s in stacks}
    out.append(_check("`/health` p99 with workers saturated", "≤ 50 ms", health, lambda v: v <= 50, ".1f"))
    out.append(_peer(results))
    return out


def _scaling(results: dict[str, Any], stacks: list[str]) -> Target:
    values = {}
    for s in stacks:
        one, two = _run(results, s, 1), _run(results, s, 2)
        values[s] = ratio(two["mix"]["images_per_s"], one["mix"]["images_per_s"]) if one and two else None
    p = results.get("pipeline", {})
    return _check(
        f"2 worker processes vs 1 (throughput, the corpus x{p.get('copies', 1)}, median of {p.get('passes', 1)} "
        "alternating passes)",
        "≥ 1.85x",
        values,
        lambda v: v >= 1.85,
        ".2f",
    )


def _overhead(results: dict[str, Any], stacks: list[str]) -> Target:
    values: dict[str, float | None] = {}
    for s in stacks:
        runs = [r["jpeg"] for r in _runs(results) if r["stack"] == s]
        own = sum(r["cpu_s"].get("api", 0.0) + r["cpu_s"].get("worker", 0.0) for r in runs)
        kernel = sum(r["cpu_s"].get("kernel", 0.0) for r in runs)
        values[s] = 100 * own / kernel if kernel else None
    jpeg = results.get("pipeline", {}).get("jpeg_class", "12 MP baseline JPEG")
    return _check(
        f"imgpipe's own CPU per image (API + worker, kernel excluded), {jpeg}, as % of the kernel's CPU",
        "≤ 25%",
        values,
        lambda v: v <= 25,
        ".0f",
    )


def _idle_latency(results: dict[str, Any], stacks: list[str], kernel_ms: float | None) -> Target:
    values: dict[str, float | None] = {}
    for s in stacks:
        run = _run(results, s)
        p50 = run["idle"]["latency_ms"]["p50"] if run and "idle" in run else None
        values[s] = p50 - kernel_ms if p50 is not None and kernel_ms is not None else None
    shown = _check("", "", values, lambda v: v <= 30, "+.0f")
    kernel = f"{kernel_ms:.0f} ms" if kernel_ms else "n/a"
    return Target(
        f"upload-to-DONE p50 for one 12 MP JPEG on an idle stack, minus the kernel's time ({kernel})",
        "≤ kernel + 30 ms",
        shown.measured.replace(": ", ": kernel ") + (" ms" if shown.verdict != "n/a" else ""),
        shown.verdict,
    )


def _worker_rss(results: dict[str, Any], stacks: list[str]) -> Target:
    values: dict[str, float | None] = {}
    for s in stacks:
        run = _run(results, s)
        if run:
            # Embedded, the worker lives in the one ``run`` process, metered as "api".
            role = "api" if s == "embedded" else "worker"
            values[f"{s} ({'api+worker' if s == 'embedded' else 'worker'} process)"] = (
                run["mix"]["rss_after"][role] / MB
            )
    p = results.get("pipeline", {})
    passes = p.get("passes", 1) * p.get("copies", 1)
    return _check(
        f"worker RSS after {passes} passes over the corpus (MB)", "≤ 200 MB", values, lambda v: v <= 200, ".0f"
    )


def _upload_rss(results: dict[str, Any], stacks: list[str]) -> Target:
    values: dict[str, float | None] = {}
    for s in stacks:
        run = _run(results, s)
        if run and "upload_memory" in run:
            values[f"{s} ({'api+worker' if s == 'embedded' else 'api'} process)"] = run["upload_memory"]["growth"] / MB
    n = next((r["upload_memory"]["uploads"] for r in _runs(results) if "upload_memory" in r), 10)
    size = next((r["upload_memory"]["bytes_each"] / MB for r in _runs(results) if "upload_memory" in r), 25)
    return _check(
        f"API RSS growth with {n} concurrent {size:.0f} MB uploads", "≤ 60 MB", values, lambda v: v <= 60, ".1f"
    )


def _peer(results: dict[str, Any]) -> Target:
    classes = results.get("peer", {}).get("classes", {})
    wanted = {
        "jpeg-base-4mp": 1.0, "jpeg-base-12mp": 1.0, "jpeg-base-24mp": 1.0,
        "png-rgb": 2.0, "png-rgba": 2.0, "webp": 2.0, "avif": 1.5,
    }  # fmt: skip
    values = {
        c: ratio(classes[c].get("imgpipe_ips"), classes[c].get("thumbor_ips")) if c in classes else None for c in wanted
    }
    verdict = _check("", "", values, lambda v: True, ".2f")
    if verdict.verdict != "n/a":
        misses = [c for c, v in values.items() if v is None or v < wanted[c]]
        verdict.verdict = "MISS" if misses else "PASS"
    return Target(
        "imgpipe embedded pipeline vs thumbor, images/s, same corpus and cores",
        "≥ 1.0x baseline JPEG, 2x PNG and WebP, 1.5x AVIF",
        verdict.measured,
        verdict.verdict,
    )
