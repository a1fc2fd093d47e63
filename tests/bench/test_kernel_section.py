"""The kernel section names the malloc settings its tools ran with, as the run recorded them."""

from __future__ import annotations

from typing import Any

from bench.renderers import TOOLS
from bench.sections import kernel_section


def _kernel(**extra: Any) -> dict[str, Any]:
    return {
        "single_ms": {"png-rgb": {"imgpipe": 50.0, "pillow": 100.0}},
        "multi_ips": {},
        "tools": {t: {"available": t in ("imgpipe", "pillow")} for t in TOOLS},
        "rounds": 3,
        "cpu": 0,
        "cores": 2,
        **extra,
    }


def test_the_recorded_tunables_are_the_ones_quoted() -> None:
    text = "\n".join(kernel_section(_kernel(glibc_tunables="glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=7")))
    assert "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=7`" in text


def test_results_that_recorded_none_quote_none() -> None:
    text = "\n".join(kernel_section(_kernel()))
    assert "GLIBC_TUNABLES" not in text
    assert "Every tool runs in the environment imgpipe gives its\nkernel processes, so none is charged" in text
