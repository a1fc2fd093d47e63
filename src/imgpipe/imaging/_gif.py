"""GIF header probe: the logical screen and every frame descriptor, skipping LZW data block by block."""

from __future__ import annotations

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Cursor, Source, Truncated
from imgpipe.imaging.types import ImageFormat, Limits

__all__ = ["probe_gif"]

_MAX_FRAMES = 50_000
# Data sub-blocks examined in the whole file. A real 25 MB GIF has about 100,000 (255 bytes
# each); one of 1-byte sub-blocks has millions and would hold a probe for seconds.
_MAX_BLOCKS = 1_000_000


class _Budget:
    def __init__(self) -> None:
        self.left = _MAX_BLOCKS

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ImageTooLarge(f"The GIF is split into more than {_MAX_BLOCKS:,} data blocks.")


def probe_gif(src: Source, limits: Limits) -> Header:
    screen = src.read(0, 13, "GIF header")
    width, height = int.from_bytes(screen[6:8], "little"), int.from_bytes(screen[8:10], "little")
    info = checked_info(ImageFormat.GIF, width, height, limits)
    flags = screen[10]
    cur = src.cursor(13)
    if flags & 0x80:
        cur.skip(3 << ((flags & 7) + 1), "GIF global colour table")
    frames = 0
    budget = _Budget()
    while True:
        try:
            if not _next_block(cur, width, height, limits, budget, after_frame=frames > 0):
                break
        except Truncated:
            if frames:
                break  # cut short after a complete frame: browsers show what is there, and we use frame 0
            raise
        frames += 1
        if frames > _MAX_FRAMES:
            raise ImageTooLarge(f"The GIF has more than {_MAX_FRAMES:,} frames.")
    if not frames:
        raise CorruptImage("The GIF has no frames.")
    return Header(info)


def _next_block(cur: Cursor, width: int, height: int, limits: Limits, budget: _Budget, *, after_frame: bool) -> bool:
    """Skip extensions up to the next frame and over it; False at the trailer (or junk after a frame)."""
    while True:
        introducer = cur.u8("GIF block")
        if introducer == 0x3B:  # trailer
            return False
        if introducer == 0x21:  # extension: label, then sub-blocks
            cur.u8("GIF extension label")
            _skip_sub_blocks(cur, budget)
            continue
        if introducer != 0x2C:
            if after_frame:
                return False  # junk after a complete frame: decoders stop here too
            raise CorruptImage("The GIF has an unknown block where a frame should start.")
        descriptor = cur.take(9, "GIF image descriptor")
        _check_frame(descriptor, width, height, limits)
        if descriptor[8] & 0x80:
            cur.skip(3 << ((descriptor[8] & 7) + 1), "GIF local colour table")
        cur.u8("GIF LZW code size")
        _skip_sub_blocks(cur, budget)
        return True


def _check_frame(descriptor: bytes, screen_w: int, screen_h: int, limits: Limits) -> None:
    """A frame that reaches far outside the logical screen is a bomb: some decoders grow the canvas to it."""
    left, top, w, h = (int.from_bytes(descriptor[i : i + 2], "little") for i in range(0, 8, 2))
    canvas_w, canvas_h = max(screen_w, left + w), max(screen_h, top + h)
    if canvas_w * canvas_h > limits.max_pixels:
        raise ImageTooLarge(
            f"A GIF frame reaches to {left + w} x {top + h} pixels; this server accepts at most "
            f"{limits.max_pixels:,} pixels."
        )
    if w == 0 or h == 0:
        raise CorruptImage("A GIF frame has zero width or height.")


def _skip_sub_blocks(cur: Cursor, budget: _Budget) -> None:
    while True:
        budget.spend()
        size = cur.u8("GIF data sub-block")
        if size == 0:
            return
        cur.skip(size, "GIF data sub-block")
