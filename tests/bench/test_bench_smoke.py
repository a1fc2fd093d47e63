"""The benchmark harness runs end to end in quick mode and writes a complete report (no timing is judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-install", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


def test_a_report_rewritten_from_a_runs_results_leaves_no_second_copy_of_them(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = quick_run
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--from-json", str(out / "results.json"), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Targets (issue 5)" in (tmp_path / "benchmarks.md").read_text()
    assert not (tmp_path / "results.json").exists()  # `--out docs` once committed one there by mistake


def test_a_report_says_which_sections_a_slow_host_shrank_and_only_then(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, results = quick_run
    assert "ran slow" not in (out / "benchmarks.md").read_text()  # quick mode never paces
    source = tmp_path / "paced.json"
    source.write_text(json.dumps({**results, "paced": {"pipeline": 0.62, "peer": 0.55}}))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--from-json", str(source), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "ran slow" in report and "pipeline at 0.62, peer at 0.55" in report


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_quick_mode_writes_a_report_with_every_section(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = quick_run
    report = (out / "benchmarks.md").read_text()
    for heading in ("## Targets (issue 5)", "## Machine", "## Corpus", "## Kernel", "## Pipeline", "## Memory"):
        assert heading in report
    assert "quick mode" in report


def test_quick_mode_says_what_it_skipped(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, results = quick_run
    assert any("quick mode" in s for s in results["skipped"])
    assert "Not measured in this run" in (out / "benchmarks.md").read_text()


def test_the_kernel_is_timed_on_every_class_of_the_corpus(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick_run
    classes = {item["cls"] for item in results["corpus"]["items"]}
    single = results["kernel"]["single_ms"]
    assert classes and set(single) == classes
    assert all(_positive(single[c]["imgpipe"]) and _positive(single[c]["pillow"]) for c in classes)
    assert all(_positive(v["imgpipe"]) for v in results["kernel"]["multi_ips"].values())


def test_the_embedded_pipeline_reports_throughput_latency_cpu_and_memory(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    _, results = quick_run
    runs = results["pipeline"]["runs"]
    assert {r["concurrency"] for r in runs} == {1, 2}
    for run in runs:
        for workload in ("mix", "jpeg"):
            w = run[workload]
            assert w["failed"] == 0
            assert _positive(w["images_per_s"]) and _positive(w["latency_ms"]["p50"])
            assert _positive(w["cpu_s"]["kernel"]) and _positive(w["rss_after"]["api"])
            # Counted in clock ticks (10 ms): a quick run's few images may show none.
            assert 0 <= w["system_ms_per_image"]["api"] <= w["cpu_ms_per_image"]["api"]
    saturated = max(runs, key=lambda r: r["concurrency"])
    assert _positive(saturated["mix"]["health_ms"]["p99"])
    assert _positive(saturated["idle"]["latency_ms"]["p50"])
    assert set(saturated["upload_memory"]["statuses"]) == {202}
    assert all(_positive(v["peak"]) for v in results["memory"].values())


def test_every_target_of_the_issue_gets_a_row_with_a_verdict(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick_run
    assert len(results["targets"]) == 12
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS", "n/a"}
