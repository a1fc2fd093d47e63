"""For each missed target, the figures of the same run that explain it, for the report."""

from __future__ import annotations

from typing import Any

from bench.sections import fmt, run_process_fit, s3_calls
from bench.targets import Target

__all__ = ["explain_misses"]

_OWN = ("api", "worker")  # imgpipe's own processes, whose share in the OS kernel (syscalls) the note shows


def explain_misses(results: dict[str, Any], targets: list[Target]) -> list[str]:
    """For each missed target, the figures from this run that explain it."""
    notes = []
    single = results.get("kernel", {}).get("single_ms", {})
    stages = results.get("kernel", {}).get("stages_ms", {})
    runs = results.get("pipeline", {}).get("runs", [])
    jpeg = results.get("pipeline", {}).get("jpeg_class", "")
    for t in targets:
        if t.verdict != "MISS":
            continue
        what = t.what.lower()
        if "decode floor" in what or "tjbench" in what:
            parts = [
                f"{c}: render {fmt(single[c].get('imgpipe'))} ms = probe {fmt(stages[c]['probe'], '.2f')} + decode and "
                f"resize {fmt(stages[c]['decode_resize'])} + encode {fmt(stages[c]['encode'], '.2f')}; tjbench "
                f"{fmt(single[c].get('tjbench'))} ms"
                for c in ("jpeg-base-12mp", "jpeg-base-24mp")
                if c in single and c in stages
            ]
            notes.append(f"- **{t.what}** ({t.measured}): " + "; ".join(parts))
        elif "vipsthumbnail" in what:
            parts = [
                f"{c}: vipsthumbnail {fmt(single[c].get('vipsthumbnail'))} ms per file, "
                f"{fmt(single[c].get('vipsthumbnail-batch'))} in a batch, imgpipe {fmt(single[c].get('imgpipe'))}"
                + _floor_share(single[c])
                for c in ("jpeg-base-24mp", "png-rgb", "png-rgba")
                if c in single
            ]
            notes.append(f"- **{t.what}** ({t.measured}): " + "; ".join(parts))
        elif "pillow" in what:
            parts = [
                f"{c}: decode and resize {fmt(stages[c]['decode_resize'])} ms, encode {fmt(stages[c]['encode'])} ms "
                f"(Pillow in all: {fmt(single.get(c, {}).get('pillow'))})"
                for c in (("webp",) if "webp" in what else ("png-rgb", "png-rgba"))
                if c in stages
            ]
            notes.append(f"- **{t.what}** ({t.measured}): " + "; ".join(parts))
        elif "worker processes vs 1" in what:
            notes.append(
                f"- **{t.what}** ({t.measured}): " + "; ".join(_ceiling(r) for r in runs if r["concurrency"] > 1)
            )
        elif "own cpu" in what:
            parts = []
            for r in runs:
                per, in_os = r["jpeg"]["cpu_ms_per_image"], r["jpeg"].get("system_ms_per_image", {})
                shown = ", ".join(
                    f"{g} {v:.1f}" + (f" ({in_os[g]:.1f} of it in the OS kernel)" if g in _OWN and g in in_os else "")
                    for g, v in sorted(per.items(), key=lambda kv: -kv[1])
                    if v >= 0.5
                )
                parts.append(f"{r['stack']} ({r['concurrency']} kernel(s)): {shown}")
            fit = run_process_fit(results.get("peer", {}))
            if fit is not None:
                parts.append(
                    f"embedded, the `run` process's cost splits into {fit[0]:.1f} ms per image and {fit[1]:.1f} per MB "
                    "uploaded (fitted over the thumbor section's classes)"
                )
            notes.append(f"- **{t.what}** ({t.measured}): CPU ms per image by process: " + "; ".join(parts))
        elif "idle stack" in what:
            parts = [
                f"{r['stack']}: queue p50 {fmt(r['idle']['queue_ms']['p50'])} ms, "
                f"work p50 {fmt(r['idle']['work_ms']['p50'])}" + _s3_share(r, single.get(jpeg, {}).get("imgpipe"))
                for r in runs
                if "idle" in r
            ]
            notes.append(f"- **{t.what}** ({t.measured}): " + "; ".join(parts))
        elif "thumbor" in what:
            peer = results.get("peer", {}).get("classes", {})
            parts = [
                f"{c}: {fmt(v.get('imgpipe_cpu_ms'), '.0f')} / {fmt(v.get('thumbor_cpu_ms'), '.0f')}"
                + _kernel_headroom(v)
                for c, v in peer.items()
                if c in ("jpeg-base-4mp", "jpeg-base-12mp", "jpeg-base-24mp", "png-rgb", "webp", "avif")
            ]
            notes.append(
                f"- **{t.what}** ({t.measured}): CPU ms per image, imgpipe / thumbor, and how fast imgpipe's kernel "
                "alone renders on all cores against thumbor (the ceiling for any pipeline built on it): "
                + "; ".join(parts)
            )
        elif "api rss" in what:
            notes.append(
                f"- **{t.what}** ({t.measured}): each upload streams into its staged object (embedded: a file in the "
                "bucket's folder; server: memory up to 1 MiB, then a temporary file, sent to S3 from there); embedded, "
                "the one process is API and worker too, its kernels reading the originals from the folder themselves."
            )
        else:
            notes.append(f"- **{t.what}**: {t.measured}")
    if not notes:
        return []
    return [
        "### The misses, with the figures that explain them",
        "",
        *notes,
        "",
        "The S3 server is moto's application served by uvicorn with keep-alive (moto's own server closes every",
        "connection, which would charge a TCP connect per storage call to imgpipe). The harness (uploads, polling,",
        "metering) runs on the same cores as everything it measures.",
        "",
    ]


def _s3_share(run: dict[str, Any], kernel_ms: float | None) -> str:
    """The S3 server's part of a server stack's idle latency: the job waits on three of its requests in turn."""
    s3 = run.get("jpeg", {}).get("cpu_ms_per_image", {}).get("s3")
    if not s3:
        return ""
    out = (
        f" (each half waits on the S3 server: storing the original, then fetching it and storing the thumbnail; "
        f"the S3 stand-in spent {s3:.1f} CPU ms per image of this class under load"
    )
    trips = run["idle"].get("s3_trips")
    if trips:
        calls = s3_calls(trips, " + ")
        out += f"; timed alone against the same server, those three calls take {calls} = {fmt(trips['sum_p50'])} ms"
        if kernel_ms:
            rest = run["idle"]["latency_ms"]["p50"] - trips["sum_p50"] - kernel_ms
            out += f", which leaves kernel {rest:+.0f} ms for the rest of the path"
    return out + ")"


def _floor_share(times: dict[str, float]) -> str:
    """For a JPEG: where the decode alone (``tjbench -scale 1/8``) stands against ``vipsthumbnail``."""
    floor, vips = times.get("tjbench"), times.get("vipsthumbnail")
    if not floor or not vips:
        return ""
    return f" (the 1/8 decode alone, tjbench, {floor:.1f} ms: {floor / vips:.2f}x of vipsthumbnail)"


def _kernel_headroom(row: dict[str, Any]) -> str:
    """The bare kernel's rate on all cores against thumbor's: the most a pipeline around that kernel could reach."""
    kernel, thumbor = row.get("kernel_ips"), row.get("thumbor_ips")
    return f" (kernel alone {kernel / thumbor:.2f}x)" if kernel and thumbor else ""


def _ceiling(run: dict[str, Any]) -> str:
    """What the CPU per image allows on this machine: every process shares the same cores as the kernels."""
    cores = run["concurrency"]
    per = run["mix"]["cpu_ms_per_image"]
    kernel, total = per.get("kernel", 0.0), sum(per.values())
    if not kernel or not total:
        return f"{run['stack']}: no CPU figures"
    one = min(1000 / kernel, cores * 1000 / total)
    many = min(cores * 1000 / kernel, cores * 1000 / total)
    return (
        f"{run['stack']}: each image costs {total:.0f} CPU ms in all, {kernel:.0f} of them in the kernel, so "
        f"{cores} cores top out at {many:.1f} images/s against {one:.1f} with one kernel: a ceiling of "
        f"{many / one:.2f}x before any other load ({run['mix']['others_cpu_s']:.0f} CPU s went to other processes)"
    )
