"""The README stays true: its two first commands, its configuration table, what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from imgpipe.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_starts_with_the_run_and_the_test_command() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    assert README.index("```sh") < README.index("\n## ")


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert "CI=true" in ci and re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: ", makefile, re.M) and re.search(r"^run: ", makefile, re.M)


def test_the_configuration_table_lists_every_setting() -> None:
    listed = set(re.findall(r"^\| `(IMGPIPE_[A-Z0-9_]+)` \|", README, re.M))
    assert listed == {f"IMGPIPE_{name.upper()}" for name in Settings.model_fields}
