"""Client filenames are kept only as sanitised metadata."""

from __future__ import annotations

import pytest

from imgpipe.domain.filenames import MAX_FILENAME, sanitize_filename


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("cat.jpg", "cat.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("evil\x00.jpg", "evil.jpg"),
        ("line\nbreak\r.png", "linebreak.png"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override is a format character
        ("..", None),
        ("", None),
        (None, None),
        ("/", None),
        ("Ünïcødé 写真.heic", "Ünïcødé 写真.heic"),
    ],
)
def test_filenames_lose_paths_and_control_characters(raw: str | None, kept: str | None) -> None:
    assert sanitize_filename(raw) == kept


def test_a_ten_thousand_character_name_is_capped_and_keeps_its_extension() -> None:
    name = sanitize_filename("a" * 10_000 + ".jpeg")
    assert name is not None and len(name) == MAX_FILENAME and name.endswith(".jpeg")
