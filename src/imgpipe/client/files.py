"""Turn the upload command's arguments (files, globs, folders) into the list of files to send."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgpipe.client.http import LocalError

__all__ = ["NoSuchFile", "expand"]


class NoSuchFile(LocalError):
    """An argument names nothing that exists, or a glob matches nothing."""


def expand(arguments: Iterable[str]) -> list[Path]:
    """Every regular file named, matched or found below a folder, once each, in a stable order.

    Every file is sent whatever its extension: the server judges what is an image.
    Hidden files and folders are skipped when found by a folder or a glob, not when named.
    """
    found: dict[Path, None] = {}
    for argument in arguments:
        for path in _one(argument):
            found.setdefault(path, None)
    return list(found)


def _one(argument: str) -> Iterator[Path]:
    path = Path(argument).expanduser()
    if path.is_dir():
        yield from _walk(path)
    elif path.is_file():
        yield path
    elif glob.has_magic(argument):
        matches = sorted(glob.glob(os.path.expanduser(argument), recursive=True))
        if not matches:
            raise NoSuchFile(f"no file matches {argument!r}")
        for match in map(Path, matches):
            yield from _walk(match) if match.is_dir() else ([match] if match.is_file() else [])
    elif path.exists():
        raise NoSuchFile(f"not a regular file or folder: {argument}")
    else:
        raise NoSuchFile(f"no such file or folder: {argument}")


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            candidate = Path(root, name)
            if not name.startswith(".") and candidate.is_file():
                yield candidate
