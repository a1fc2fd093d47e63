"""The report's measurement sections as Markdown: kernel, pipeline, memory and peer tables."""

from __future__ import annotations

from typing import Any

from bench.renderers import TOOLS
from bench.stats import line_fit, ratio

__all__ = ["fmt", "kernel_section", "memory_section", "peer_section", "pipeline_section", "run_process_fit", "table"]

MB = 1e6
_GROUPS = ("api", "worker", "kernel", "postgres", "rabbitmq", "s3", "client")


def fmt(value: float | None, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def kernel_section(k: dict[str, Any]) -> list[str]:
    single, multi = k["single_ms"], k["multi_ips"]
    tools = [t for t in TOOLS if k["tools"][t]["available"]]
    rows = []
    for cls, v in single.items():
        me = v.get("imgpipe")
        rows.append(
            [f"`{cls}`", *[fmt(v.get(t)) for t in tools]]
            + [fmt(ratio(me, v.get(t)), ".2f") for t in ("djpeg", "tjbench", "vipsthumbnail", "pillow") if t in tools]
        )
    ratio_head = [f"imgpipe / {t}" for t in ("djpeg", "tjbench", "vipsthumbnail", "pillow") if t in tools]
    missing = [f"`{t}` ({TOOLS[t][2]} not installed: run `scripts/bench-deps`)" for t in TOOLS if t not in tools]
    out = [
        "## Kernel",
        "",
        f"### One core: ms per image (median of {k['rounds']} interleaved rounds, pinned to cpu {k['cpu']})",
        "",
        "Each round times every (tool, file) pair once, in a new random order; a class's figure is the mean of",
        f"its files' medians. Other processes on the machine used {k.get('single_others_cpu_s', 0):.0f} CPU seconds "
        f"during these {k.get('single_seconds', 0):.0f} s. Every tool runs in the environment imgpipe gives its",
        f"kernel processes{_tunables(k)}, so none is charged page faults the others are spared; thumbor, below, too.",
        "Tools:",
        "",
        *[f"- **{t}**: {TOOLS[t][0]}" for t in tools],
        *([f"- not measured: {', '.join(missing)}"] if missing else []),
        "",
        *table(["class", *tools, *ratio_head], rows),
        f"### All {k['cores']} cores: images/s",
        "",
        f"{k['cores']} processes side by side, one decode thread each, class after class in synchronised phases;",
        "each phase's first image is a warm-up, not counted (a format's first decode pays its library's set-up).",
        "The last column can pass 2: the one-core rounds interleave every tool and file, so each render there",
        "starts colder (caches, freshly mapped buffers) than in a phase of one format.",
        "",
    ]
    multi_tools = sorted({t for v in multi.values() for t in v}, key=list(TOOLS).index)
    rows = [
        [
            f"`{c}`",
            *[fmt(v.get(t)) for t in multi_tools],
            fmt(
                ratio(v.get("imgpipe"), 1000 / single[c]["imgpipe"])
                if c in single and single[c].get("imgpipe")
                else None,
                ".2f",
            ),
        ]
        for c, v in multi.items()
    ]
    out += table(["class", *multi_tools, "imgpipe all cores / one core"], rows)
    stages = k.get("stages_ms", {})
    if stages:
        out += [
            "### Where the kernel's time goes (ms, one core, median)",
            "",
            "The kernel run in three steps: header probe (imgpipe's own Python parser), decode and resize into",
            "memory, encode; each file's median, a class's mean over its files. JPEGs take the Pillow route (draft",
            "decode, fit, encode), still WebPs libwebp's scaled decode, the other formats libvips' lazy pipeline,",
            "whose split costs a copy, so there the sum is a little over a plain render.",
            "",
            *table(
                ["class", "probe", "decode + resize", "encode", "render (above)"],
                [
                    [
                        f"`{c}`",
                        fmt(s["probe"], ".2f"),
                        fmt(s["decode_resize"]),
                        fmt(s["encode"], ".2f"),
                        fmt(single.get(c, {}).get("imgpipe")),
                    ]
                    for c, s in stages.items()
                ],
            ),
        ]
    return out


def pipeline_section(p: dict[str, Any]) -> list[str]:
    rows, cpu_rows = [], []
    for run in p["runs"]:
        for workload in ("mix", "jpeg"):
            w = run[workload]
            label = [
                run["stack"],
                str(run["concurrency"]),
                f"corpus x{p['passes'] * p.get('copies', 1)}" if workload == "mix" else p["jpeg_class"],
            ]
            lat = w["latency_ms"]
            rows.append(
                [
                    *label,
                    str(w["n"]),
                    str(w["failed"]),
                    fmt(w["images_per_s"], ".2f"),
                    fmt(lat["p50"], ".0f"),
                    fmt(lat["p95"], ".0f"),
                    fmt(lat["p99"], ".0f"),
                ]
            )
            per, in_os = w["cpu_ms_per_image"], w.get("system_ms_per_image", {})
            own = per.get("api", 0.0) + per.get("worker", 0.0)
            cpu_rows.append(
                [
                    *label,
                    *[fmt(per.get(g)) if g in per else "–" for g in _GROUPS],
                    fmt(own),
                    fmt(in_os.get("api", 0.0) + in_os.get("worker", 0.0)) if in_os else "–",
                    fmt(ratio(own, per.get("kernel")), ".2f"),
                    fmt(w["others_cpu_s"], ".1f"),
                ]
            )
    out = [
        "## Pipeline",
        "",
        "Uploads go through the HTTP API (4 at a time, from the harness on the same machine), then each job is",
        "awaited with one long-poll (`?wait=20&until=final`, answered at DONE, not at PROCESSING). Throughput is",
        "jobs / (last `finished_at` − first `created_at`); latency is",
        "`finished_at − created_at`, both from the server's timestamps. Embedded: `imgpipe run` (SQLite, a local",
        "folder, the in-process queue); server: `imgpipe api` + `imgpipe worker` on PostgreSQL, RabbitMQ and moto's",
        "S3 server. The concurrency is `IMGPIPE_WORKER_CONCURRENCY`, the number of kernel processes.",
        "",
        *table(["stack", "kernels", "workload", "jobs", "failed", "images/s", "p50 ms", "p95 ms", "p99 ms"], rows),
        "### CPU milliseconds per image, by process",
        "",
        "From each process's own CPU counters over the run. Embedded, `api` is the one `imgpipe run` process",
        "(API and worker); `kernel` is the kernel child processes; `postgres` counts the postmaster, its shared",
        "helpers and our database's backends; `rabbitmq` the whole broker (shared with anyone else using it);",
        "`s3` moto; `client` the harness itself. `own` = api + worker; `own in OS` the part of it spent in the",
        "operating system's kernel (system calls: sockets, files, fsync, thread wake-ups), not in user space.",
        "`others` = CPU seconds of every other process on the machine during the run.",
        "",
        *table(["stack", "kernels", "workload", *_GROUPS, "own", "own in OS", "own / kernel", "others (s)"], cpu_rows),
    ]
    idle = [r for r in p["runs"] if "idle" in r]
    if idle:
        out += [
            f"### Idle stack: one `{p['jpeg_class']}` at a time (ms)",
            "",
            "`queue` = `started_at − created_at` (store the original, record, publish, deliver, claim);",
            "`work` = `finished_at − started_at` (fetch the original, kernel, store the thumbnail, complete).",
            "",
            *table(
                ["stack", "n", "p50", "p95", "p99", "queue p50", "work p50"],
                [
                    [
                        r["stack"],
                        str(r["idle"]["latency_ms"]["n"]),
                        fmt(r["idle"]["latency_ms"]["p50"]),
                        fmt(r["idle"]["latency_ms"]["p95"]),
                        fmt(r["idle"]["latency_ms"]["p99"]),
                        fmt(r["idle"]["queue_ms"]["p50"]),
                        fmt(r["idle"]["work_ms"]["p50"]),
                    ]
                    for r in idle
                ],
            ),
            *_s3_trips(idle),
        ]
    health = [r for r in p["runs"] if "health_ms" in r["mix"]]
    if health:
        out += [
            "### `/health` while the workers saturate every core (ms)",
            "",
            "Probed every 20 ms on its own connection while the corpus backlog drains (after the uploads).",
            "",
            *table(
                ["stack", "probes", "p50", "p95", "p99", "max", "errors"],
                [
                    [
                        r["stack"],
                        str(r["mix"]["health_ms"]["n"]),
                        *[fmt(r["mix"]["health_ms"][q]) for q in ("p50", "p95", "p99", "max")],
                        str(r["mix"]["health_errors"]),
                    ]
                    for r in health
                ],
            ),
        ]
    return out


def memory_section(results: dict[str, Any]) -> list[str]:
    out = ["## Memory", ""]
    peak = results.get("memory", {})
    if peak:
        out += [
            "### Peak RSS of one render in a fresh kernel process (largest file of each class)",
            "",
            *table(
                ["class", "file", "MP", "MB on disk", "RSS before", "peak RSS", "growth"],
                [
                    [
                        f"`{c}`",
                        v["file"],
                        fmt(v["megapixels"]),
                        fmt(v["bytes"] / MB),
                        fmt(v.get("baseline", 0) / MB, ".0f"),
                        fmt(v.get("peak", 0) / MB, ".0f"),
                        fmt(v.get("growth", 0) / MB, ".0f"),
                    ]
                    for c, v in peak.items()
                ],
            ),
        ]
    runs = results.get("pipeline", {}).get("runs", [])
    if runs:
        out += [
            f"### After {_passes(results)} passes over the corpus (MB)",
            "",
            *table(
                ["stack", "kernels", "api", "worker", "kernels (sum)", "api peak", "worker peak", "kernel peak (sum)"],
                [
                    [
                        r["stack"],
                        str(r["concurrency"]),
                        *[_mb(r, "rss_after", g) for g in ("api", "worker", "kernel")],
                        *[_mb(r, "peak_rss", g) for g in ("api", "worker", "kernel")],
                    ]
                    for r in runs
                ],
            ),
        ]
        up = [r for r in runs if "upload_memory" in r]
        if up:
            out += [
                "### API RSS while uploads stream (MB)",
                "",
                *table(
                    ["stack", "uploads", "MB each", "stream s", "statuses", "baseline", "peak", "growth", "after"],
                    [
                        [
                            r["stack"],
                            str(u["uploads"]),
                            fmt(u["bytes_each"] / MB),
                            fmt(u["stream_s"]),
                            ",".join(sorted({str(s) for s in u["statuses"]})),
                            fmt(u["baseline_rss"] / MB, ".0f"),
                            fmt(u["peak_rss"] / MB, ".0f"),
                            fmt(u["growth"] / MB),
                            fmt(u["after_rss"] / MB, ".0f"),
                        ]
                        for r in up
                        for u in [r["upload_memory"]]
                    ],
                ),
            ]
    return out


def _passes(results: dict[str, Any]) -> int:
    p = results["pipeline"]
    return int(p["passes"] * p.get("copies", 1))


def _mb(run: dict[str, Any], key: str, group: str) -> str:
    if group == "worker" and run["stack"] == "embedded":
        return "(in api)"
    return fmt(run["mix"][key].get(group, 0) / MB, ".0f")


def peer_section(peer: dict[str, Any]) -> list[str]:
    rows = []
    for cls, v in peer["classes"].items():
        rows.append(
            [
                f"`{cls}`",
                fmt(v.get("kernel_ips")),
                fmt(v.get("imgpipe_ips")),
                fmt(v.get("thumbor_ips")),
                fmt(ratio(v.get("imgpipe_ips"), v.get("thumbor_ips")), ".2f"),
                fmt(v.get("imgpipe_cpu_ms"), ".0f"),
                fmt(v.get("imgpipe_run_cpu_ms")),
                fmt(v.get("imgpipe_run_system_ms")),
                fmt(v.get("thumbor_cpu_ms"), ".0f"),
                str(v.get("thumbor_failed", 0)),
                fmt(v["bytes_per_image"] / MB, ".2f") if "bytes_per_image" in v else "–",
            ]
        )
    return [
        "## Peer: thumbor",
        "",
        f"{peer['version']} from PyPI in its own virtualenv, file loader over the same corpus, {peer['processes']}",
        "single-process servers on their own ports, the client's connections split evenly between them as a load",
        "balancer would (thumbor's `--processes` shares one socket, and a burst of keep-alive connections often lands",
        "on one process: the same class then measured 100 or 205 images/s from run to run),",
        "`/unsafe/fit-in/256x256/filters:format(jpeg|webp):quality(80)/<file>` (the same output as",
        "imgpipe's: JPEG q80, WebP for images with alpha), no result storage; thumbor does not apply EXIF orientation",
        "by default. imgpipe: the embedded pipeline (`imgpipe run`, 2 kernel processes), uploads and all (each",
        "original written and fsynced before it is accepted; thumbor writes nothing), its rate",
        "taken between the first and the last job's completion (thumbor's clients keep it busy from the start).",
        f"Each class runs each side {peer.get('rounds', 1)} times, A B B A, the order flipping from class to class;",
        "the rates and CPU figures are the means. CPU ms per image: thumbor's processes;",
        "imgpipe's `run` process and its kernels, then the `run` process alone (the API and the worker)",
        "and the part of it spent in the operating system's kernel.",
        *_page_cache_cost(peer),
        "",
        *table(
            [
                "class",
                "imgpipe kernel /s",
                "imgpipe pipeline /s",
                "thumbor /s",
                "pipeline / thumbor",
                "imgpipe CPU ms",
                "of it `run`",
                "`run` in the OS",
                "thumbor CPU ms",
                "thumbor errors",
                "MB per image",
            ],
            rows,
        ),
        *run_process_cost(peer),
    ]


def _tunables(k: dict[str, Any]) -> str:
    """The malloc settings the kernel section ran with, as recorded (older results have none)."""
    tunables = k.get("glibc_tunables")
    if not tunables:
        return ""
    return f" (`GLIBC_TUNABLES={tunables}`: big buffers in transparent huge pages, from a heap that keeps its pages)"


def _page_cache_cost(peer: dict[str, Any]) -> list[str]:
    """What a MB written into the page cache cost right before this section: every upload stored pays it."""
    cost = peer.get("page_cache_ms_per_mb")
    if cost is None:
        return []
    return [
        f"Writing into the page cache cost {cost:.2f} CPU ms per MB just before this section (the machine table "
        "gives the cost at the start of the run); the `run` process pays it, in the OS, for every MB it stores."
    ]


def run_process_cost(peer: dict[str, Any]) -> list[str]:
    """The ``run`` process's CPU per image as a fixed part plus a part per MB uploaded, fitted over the classes."""
    fit = run_process_fit(peer)
    if fit is None:
        return []
    fixed, per_mb = fit
    return [
        "",
        f"imgpipe's `run` process costs about {fixed:.1f} CPU ms per image plus {per_mb:.1f} per MB uploaded "
        "(a least-squares line through the classes above). The fixed part is what every image costs whatever its "
        "size: two requests, the database, the queue, the kernel's round trip, the fsyncs; the part per MB is "
        "receiving, hashing and writing the upload.",
    ]


def run_process_fit(peer: dict[str, Any]) -> tuple[float, float] | None:
    """(ms per image, ms per MB) of the ``run`` process from the peer classes; None when too few were measured."""
    points = [
        (v["bytes_per_image"] / MB, v["imgpipe_run_cpu_ms"])
        for v in peer.get("classes", {}).values()
        if "bytes_per_image" in v and v.get("imgpipe_run_cpu_ms") is not None
    ]
    return line_fit(points)


def _s3_trips(idle: list[dict[str, Any]]) -> list[str]:
    """The S3 stand-in's part of the server stack's idle latency, from its calls timed alone (``bench/s3trips.py``)."""
    lines = []
    for r in idle:
        trips = r["idle"].get("s3_trips")
        if trips:
            calls = s3_calls(trips, ", ")
            lines.append(
                f"- {r['stack']}: the job waits on three S3 calls in turn. Timed alone against the same S3 server "
                f"through imgpipe's S3 client (p50 of {trips['calls_ms']['put original']['n']}, ms): {calls}; "
                f"together {fmt(trips['sum_p50'])} of the {fmt(r['idle']['latency_ms']['p50'])} ms p50."
            )
    return [*lines, ""] if lines else []


def s3_calls(trips: dict[str, Any], joiner: str) -> str:
    """Each S3 call timed alone (``bench/s3trips.py``) with its p50 in ms, joined."""
    return joiner.join(f"{call} {fmt(v['p50'])}" for call, v in trips["calls_ms"].items())
