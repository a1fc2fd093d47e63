"""Read an upload's header without decoding pixels: pure Python, safe to run in the API process.

No native image library runs here. Every loop is bounded and every length is checked
against the file size, so a hostile header can only end in one of the domain errors.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from collections.abc import Callable, Iterator
from typing import IO

from imgpipe.imaging._bmp import probe_bmp
from imgpipe.imaging._gif import probe_gif
from imgpipe.imaging._header import Header, upright
from imgpipe.imaging._isobmff import probe_isobmff
from imgpipe.imaging._jpeg import probe_jpeg
from imgpipe.imaging._png import probe_png
from imgpipe.imaging._source import Source
from imgpipe.imaging._tiff import probe_tiff
from imgpipe.imaging._webp import probe_webp
from imgpipe.imaging.sniff import HEAD_SIZE, sniff
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits

__all__ = ["inspect", "probe", "probe_bytes"]

_PROBES: dict[ImageFormat, Callable[[Source, Limits], Header]] = {
    ImageFormat.JPEG: probe_jpeg,
    ImageFormat.PNG: probe_png,
    ImageFormat.GIF: probe_gif,
    ImageFormat.WEBP: probe_webp,
    ImageFormat.TIFF: probe_tiff,
    ImageFormat.BMP: probe_bmp,
    ImageFormat.HEIF: lambda src, limits: probe_isobmff(src, ImageFormat.HEIF, limits),
    ImageFormat.AVIF: lambda src, limits: probe_isobmff(src, ImageFormat.AVIF, limits),
}


def probe(f: IO[bytes], limits: Limits) -> ImageInfo:
    """Format and size from the header of a seekable file (its content starts at offset 0).

    The size is the displayed (upright) one, as a viewer shows the image and as the
    kernel renders it: EXIF orientations 5-8 (JPEG APP1, WebP EXIF chunk, TIFF tag 274,
    PNG eXIf, raw profile or XMP) swap width and height, and HEIF/AVIF clean aperture
    and rotation are applied. An orientation of 0, 9 or more, or unreadable EXIF, means
    "as stored". The pixel limit applies to the stored (coded) size, which is what a
    decoder allocates. Raises EmptyUpload, UnsupportedImage, CorruptImage or
    ImageTooLarge, nothing else. The file's position is restored afterwards.
    """
    return inspect(f, limits).info


def probe_bytes(data: bytes, limits: Limits) -> ImageInfo:
    return probe(io.BytesIO(data), limits)


def inspect(f: IO[bytes], limits: Limits) -> Header:
    """``probe`` plus what the kernel needs to route and orient the image (``Header.info`` is upright)."""
    position = f.tell()
    try:
        f.seek(0)
        fmt = sniff(f.read(HEAD_SIZE))
        with _source(f) as src:
            return upright(_PROBES[fmt](src, limits))
    finally:
        f.seek(position)


# The pages a walk touches stay mapped until it ends, whole large folios of them, and count in
# the process's RSS (page cache, not memory of its own): a 25 MB PNG's walk maps 24 MB. Past
# this size the file is read instead, so concurrent uploads of big files do not add up there.
_MAP_AT_MOST = 16 * 1024 * 1024


@contextlib.contextmanager
def _source(f: IO[bytes]) -> Iterator[Source]:
    """A file on disk (up to ``_MAP_AT_MOST``) is mapped: the walk through its chunks then makes no system call.

    Read through the file object, each chunk header was a seek and a read, and each read let
    go of the GIL. The probe runs on a thread beside the busy event loop, so every one of them
    was a hand-over of the GIL: a 5 MB PNG's 90 chunks cost about 0.5 ms of CPU more than
    mapped (``bench/``'s pipeline, png-rgb). Anything else (bytes in memory) is read as it is.
    """
    if not isinstance(f, (io.BufferedReader, io.BufferedRandom, io.FileIO)):
        yield Source.of_file(f)
        return
    f.flush()
    if not 0 < os.fstat(f.fileno()).st_size <= _MAP_AT_MOST:  # empty: the probe reports what is missing
        yield Source.of_file(f)
        return
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        yield Source.of_buffer(mapped)
