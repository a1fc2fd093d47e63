"""The client's filename, made safe to keep as metadata. It never becomes a path or a key."""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_FILENAME", "sanitize_filename"]

MAX_FILENAME = 255


def sanitize_filename(raw: str | None) -> str | None:
    """Keep the last path component, drop control and format characters, cap the length.

    ``../../etc/passwd`` becomes ``passwd``; NUL and other control characters go;
    a name that is nothing but dots or empty becomes None.
    """
    if not raw:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = unicodedata.normalize("NFC", name).strip().strip(".").strip()
    if not name:
        return None
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        keep = MAX_FILENAME - (len(ext) + 1 if ext else 0)
        name = (stem if dot and ext else name)[:keep] + (f".{ext}" if ext else "")
    return name
