"""The report explains each missed target with the figures of the same run."""

from __future__ import annotations

from bench.misses import explain_misses
from bench.targets import Target


def _run(stack: str, s3: float | None) -> dict[str, object]:
    cpu = {"api": 7.0, "kernel": 18.0, **({"s3": s3} if s3 is not None else {})}
    return {
        "stack": stack,
        "concurrency": 2,
        "jpeg": {"cpu_ms_per_image": cpu},
        "idle": {"queue_ms": {"p50": 3.0 if s3 is None else 14.0}, "work_ms": {"p50": 22.0 if s3 is None else 33.0}},
    }


_MISS = Target("upload-to-DONE p50 for one 12 MP JPEG on an idle stack", "≤ kernel + 30 ms", "server: +31", "MISS")


def _explained(results: dict[str, object]) -> str:
    (line,) = [x for x in explain_misses(results, [_MISS]) if x.startswith("- **upload-to-DONE")]
    return line


def test_a_missed_idle_latency_is_explained_by_its_halves_and_the_s3_servers_share() -> None:
    results = {"pipeline": {"runs": [_run("embedded", None), _run("server", 12.4)]}}
    embedded, server = _explained(results).split("; server: ")
    assert "queue p50 3.0 ms, work p50 22.0" in embedded and "S3" not in embedded
    assert "queue p50 14.0 ms, work p50 33.0" in server
    assert "the S3 stand-in spent 12.4 CPU ms per image" in server
    assert "timed alone" not in server  # no round trips measured, none quoted


def test_the_s3_round_trips_timed_alone_are_taken_off_the_idle_latency() -> None:
    server = _run("server", 12.4)
    trips = {"put original": {"p50": 9.0}, "get original": {"p50": 6.0}, "put thumbnail": {"p50": 3.5}}
    server["idle"] = {**server["idle"], "latency_ms": {"p50": 49.0}, "s3_trips": {"calls_ms": trips, "sum_p50": 18.5}}
    results = {
        "kernel": {"single_ms": {"jpeg-base-12mp": {"imgpipe": 18.0}}},
        "pipeline": {"runs": [server], "jpeg_class": "jpeg-base-12mp"},
    }
    line = _explained(results)
    assert "put original 9.0 + get original 6.0 + put thumbnail 3.5 = 18.5 ms" in line
    assert "leaves kernel +12 ms" in line  # 49 - 18.5 - 18


def test_a_passed_target_is_not_explained() -> None:
    results = {"pipeline": {"runs": [_run("server", 12.4)]}}
    passed = Target("upload-to-DONE p50 for one 12 MP JPEG on an idle stack", "≤ kernel + 30 ms", "+22", "PASS")
    assert explain_misses(results, [passed]) == []


def test_a_missed_vipsthumbnail_ratio_says_where_the_decode_floor_stands() -> None:
    single = {
        "jpeg-base-24mp": {"vipsthumbnail": 120.0, "vipsthumbnail-batch": 76.0, "imgpipe": 60.0, "tjbench": 52.0},
        "png-rgb": {"vipsthumbnail": 270.0, "vipsthumbnail-batch": 200.0, "imgpipe": 80.0},
    }
    miss = Target("kernel vs `vipsthumbnail` per file, baseline JPEG and PNG", "≤ 0.35x", "0.50", "MISS")
    (line,) = [x for x in explain_misses({"kernel": {"single_ms": single}}, [miss]) if x.startswith("- **kernel")]
    jpeg, png = line.split("; png-rgb: ")
    assert "imgpipe 60.0 (the 1/8 decode alone, tjbench, 52.0 ms: 0.43x of vipsthumbnail)" in jpeg
    assert "tjbench" not in png


def test_a_missed_own_cpu_target_shows_the_share_of_imgpipes_processes_in_the_os_kernel() -> None:
    server = _run("server", 12.4)
    server["jpeg"]["system_ms_per_image"] = {"api": 3.1, "worker": 2.0, "kernel": 1.5, "s3": 4.0}
    miss = Target(
        "imgpipe's own CPU per image (API + worker, kernel excluded), jpeg-base-12mp, as % of the kernel's CPU",
        "≤ 25%",
        "server: 39",
        "MISS",
    )
    (line,) = [x for x in explain_misses({"pipeline": {"runs": [server]}}, [miss]) if x.startswith("- **imgpipe's own")]
    assert "kernel 18.0, s3 12.4, api 7.0 (3.1 of it in the OS kernel)" in line
    assert line.count("in the OS kernel") == 1  # the kernel's and the S3 server's are not imgpipe's own


def test_a_missed_thumbor_ratio_says_how_far_the_bare_kernel_itself_gets() -> None:
    peer = {
        "jpeg-base-12mp": {"imgpipe_cpu_ms": 28.0, "thumbor_cpu_ms": 23.0, "kernel_ips": 85.0, "thumbor_ips": 84.5},
        "png-rgb": {"imgpipe_cpu_ms": 66.0, "thumbor_cpu_ms": 140.0, "thumbor_ips": 13.8},  # no kernel rate
    }
    miss = Target("imgpipe embedded pipeline vs thumbor, images/s", "≥ 1.0x", "0.76", "MISS")
    (line,) = [x for x in explain_misses({"peer": {"classes": peer}}, [miss]) if x.startswith("- **imgpipe")]
    assert line.endswith("jpeg-base-12mp: 28 / 23 (kernel alone 1.01x); png-rgb: 66 / 140")
