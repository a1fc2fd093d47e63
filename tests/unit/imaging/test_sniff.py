"""sniff(): magic bytes decide the format, by allowlist."""

from __future__ import annotations

import pytest

from imgpipe.domain.errors import EmptyUpload, UnsupportedImage
from imgpipe.imaging.sniff import sniff
from imgpipe.imaging.types import ImageFormat
from support.corpus import CORPUS


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


SUPPORTED = {
    "jpeg-jfif": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ImageFormat.JPEG),
    "jpeg-exif": (b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00", ImageFormat.JPEG),
    "jpeg-bare": (b"\xff\xd8\xff\xdb\x00\x43", ImageFormat.JPEG),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", ImageFormat.PNG),
    "gif87a": (b"GIF87a\x01\x00\x01\x00", ImageFormat.GIF),
    "gif89a": (b"GIF89a\x01\x00\x01\x00", ImageFormat.GIF),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ImageFormat.WEBP),
    "tiff-le": (b"II*\x00\x08\x00\x00\x00", ImageFormat.TIFF),
    "tiff-be": (b"MM\x00*\x00\x00\x00\x08", ImageFormat.TIFF),
    "bigtiff": (b"II+\x00\x08\x00\x00\x00", ImageFormat.TIFF),
    "bmp": (b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00", ImageFormat.BMP),
    **{
        f"heif-{brand.decode()}": (_ftyp(brand, b"mif1", brand), ImageFormat.HEIF)
        for brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs")
    },
    "heif-mif1": (_ftyp(b"mif1", b"mif1", b"heic"), ImageFormat.HEIF),
    "heif-msf1": (_ftyp(b"msf1", b"msf1", b"hevc"), ImageFormat.HEIF),
    "avif": (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), ImageFormat.AVIF),
    "avif-sequence": (_ftyp(b"avis", b"avis", b"msf1", b"iso8"), ImageFormat.AVIF),
    "avif-under-mif1": (_ftyp(b"mif1", b"mif1", b"avif", b"miaf"), ImageFormat.AVIF),
    "avif-profile-brand": (_ftyp(b"MA1B", b"avif", b"mif1"), ImageFormat.AVIF),
}


@pytest.mark.parametrize(("head", "expected"), SUPPORTED.values(), ids=SUPPORTED.keys())
def test_every_supported_magic_is_recognised(head: bytes, expected: ImageFormat) -> None:
    assert sniff(head) is expected


REFUSED = {
    "html": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
    "html-lowercase": b"<html><head><title>x</title></head></html>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "svg-with-script": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>',
    "svg-xxe": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>',
    "svg-billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>',
    "xml": b'<?xml version="1.0" encoding="UTF-8"?><root/>',
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    "javascript": b"function f() { return document.cookie; }\n",
    "plain-text": b"just some text, nothing to see here\n",
    "imagemagick-mvg": b"push graphic-context\nviewbox 0 0 640 480\nimage over 0,0 0,0 'https://x/'\npop",
    "ppm": b"P6\n32 32\n255\n" + b"\x00" * 32,
    "pgm-ascii": b"P2\n2 2\n255\n0 0 0 0\n",
    "psd": b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03",
    "ico": b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00",
    "jpeg-xl": b"\xff\x0a\xfa\x7f",
    "jpeg-2000": b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\x00\x14ftypjp2 ",
    "mp4-video": _ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "quicktime": _ftyp(b"qt  ", b"qt  "),
    "ftyp-too-short": b"\x00\x00\x00\x08ftypheic",
    "riff-wave": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "utf8-bom-svg": b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>",
    "one-byte": b"\xff",
}


@pytest.mark.parametrize("head", REFUSED.values(), ids=REFUSED.keys())
def test_anything_not_on_the_allowlist_is_unsupported(head: bytes) -> None:
    with pytest.raises(UnsupportedImage):
        sniff(head)


def test_no_bytes_is_an_empty_upload() -> None:
    with pytest.raises(EmptyUpload):
        sniff(b"")


def test_a_jpeg_with_a_zip_appended_sniffs_as_jpeg() -> None:
    jpeg = (CORPUS / "formats/jpeg/hopper_gray.jpg").read_bytes()
    polyglot = jpeg + b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 64 + b"PK\x05\x06" + b"\x00" * 18
    assert sniff(polyglot[:64]) is ImageFormat.JPEG


def test_mpo_is_jpeg() -> None:
    assert sniff((CORPUS / "formats/jpeg/sugarshack.mpo").read_bytes()[:64]) is ImageFormat.JPEG


def test_a_heif_named_file_with_heic_brands_is_heif_whatever_its_payload() -> None:
    # The probe reads the primary item's codec from the meta box; sniff only sees brands.
    assert sniff((CORPUS / "formats/heic/hopper_av1.heif").read_bytes()[:64]) is ImageFormat.HEIF


def test_only_the_head_matters_so_a_long_upload_is_sniffed_from_its_start() -> None:
    assert sniff(b"GIF89a" + b"<svg>" * 1000) is ImageFormat.GIF
