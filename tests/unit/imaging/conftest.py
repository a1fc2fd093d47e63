"""Fixtures for the image kernel tests: one configured kernel per test session."""

from __future__ import annotations

import pytest

from imgpipe.imaging.kernel import configure


@pytest.fixture(scope="session")
def kernel() -> None:
    """Configure the kernel once, as each kernel process does before its first job."""
    configure(threads=1)
