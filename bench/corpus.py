"""The benchmark corpus: real photographs from Debian wallpaper packages, converted to every format imgpipe takes.

Built on demand into ``bench/.cache/corpus/`` (never committed) and reused while its
manifest matches this module's recipe.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

__all__ = ["BIG_BYTES", "CLASSES", "Corpus", "Item", "build_corpus"]

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
_RECIPE = 4  # bump when the recipe changes: the cached corpus is rebuilt

# (path, Debian package). Large: 17-20 MP photographs; medium: 4 MP (2560x1600) ones.
_LARGE = [
    ("/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "lomiri-wallpapers"),
    ("/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg", "lomiri-wallpapers"),
]
_MEDIUM = [
    ("/usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg", "plasma-workspace-wallpapers"),
    ("/usr/share/backgrounds/mate/nature/LadyBird.jpg", "mate-backgrounds"),
]
# When no wallpaper package is installed (CI, a laptop): photographs from the test corpus.
_FALLBACK = [
    (str(ROOT / "tests/corpus/exif-orientation/jpeg-recurser/Landscape_1.jpg"), "tests/corpus (Unsplash)"),
    (str(ROOT / "tests/corpus/exif-orientation/jpeg-recurser/Portrait_1.jpg"), "tests/corpus (Unsplash)"),
]

# class -> (what it is, source size, pixel size, format, encoder options)
Recipe = dict[str, tuple[str, str, tuple[int, int], str, dict[str, object]]]
CLASSES: Recipe = {
    "jpeg-base-4mp": ("baseline JPEG, 2560x1600, q90", "medium", (2560, 1600), "JPEG", {"quality": 90}),
    "jpeg-base-12mp": ("baseline JPEG, 4000x3000, q90", "large", (4000, 3000), "JPEG", {"quality": 90}),
    "jpeg-base-24mp": ("baseline JPEG, 6000x4000, q90", "large", (6000, 4000), "JPEG", {"quality": 90}),
    "jpeg-prog-4mp": (
        "progressive JPEG, 2560x1600",
        "medium",
        (2560, 1600),
        "JPEG",
        {"quality": 90, "progressive": True},
    ),
    "jpeg-prog-12mp": (
        "progressive JPEG, 4000x3000",
        "large",
        (4000, 3000),
        "JPEG",
        {"quality": 90, "progressive": True},
    ),
    "jpeg-prog-24mp": (
        "progressive JPEG, 6000x4000",
        "large",
        (6000, 4000),
        "JPEG",
        {"quality": 90, "progressive": True},
    ),
    "jpeg-phone-exif6": (
        "phone JPEG, 4032x3024 stored sideways, EXIF orientation 6",
        "large",
        (4032, 3024),
        "JPEG",
        {"quality": 92},
    ),
    "png-rgb": ("PNG, RGB, 2560x1600", "medium", (2560, 1600), "PNG", {}),
    "png-rgba": ("PNG, RGBA (soft alpha vignette), 2560x1600", "medium", (2560, 1600), "PNG", {"alpha": True}),
    "webp": ("lossy WebP, 2560x1600, q80", "medium", (2560, 1600), "WEBP", {"quality": 80}),
    "avif": ("AVIF 8-bit 4:2:0, 4000x3000, q60", "large", (4000, 3000), "AVIF", {"quality": 60}),
    "heic": ("HEIC (HEVC), 4032x3024, q60, no embedded thumbnail", "large", (4032, 3024), "HEIF", {"quality": 60}),
    "gif": ("GIF, 256 colours dithered, 1280x800", "medium", (1280, 800), "GIF", {}),
}
# The quick corpus: a few small classes, enough to exercise every code path of the harness.
_QUICK: Recipe = {
    "jpeg-base-2mp": ("baseline JPEG, 1800x1200, q90", "medium", (1800, 1200), "JPEG", {"quality": 90}),
    "png-rgba": ("PNG, RGBA, 1200x800", "medium", (1200, 800), "PNG", {"alpha": True}),
    "webp": ("lossy WebP, 1200x800, q80", "medium", (1200, 800), "WEBP", {"quality": 80}),
}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "AVIF": "avif", "HEIF": "heic", "GIF": "gif"}
BIG_BYTES = 25_000_000  # "a 25 MB upload": just under imgpipe's default limit of 25 MiB


@dataclass(frozen=True)
class Item:
    name: str
    cls: str
    path: str
    format: str
    width: int
    height: int
    bytes: int
    source: str

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass
class Corpus:
    root: Path
    items: list[Item]
    big: Item  # a valid ~25 MB PNG for the upload-memory test
    sources: list[str]
    classes: dict[str, str]  # class -> description
    seconds_to_build: float

    def by_class(self) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for item in self.items:
            out.setdefault(item.cls, []).append(item)
        return out


def build_corpus(*, quick: bool, log: Callable[[str], None] = print) -> Corpus:
    recipe = _QUICK if quick else CLASSES
    large, medium = _available(_LARGE), _available(_MEDIUM)
    fallback = _available(_FALLBACK)
    pools = {"large": large or medium or fallback, "medium": medium or large or fallback}
    if not pools["large"]:
        raise RuntimeError("no source photograph found: run scripts/bench-deps (wallpaper packages)")
    if quick:  # small and fast to build: the same source for every class
        pools = {"large": pools["medium"][:1], "medium": pools["medium"][:1]}
    key = {"recipe": _RECIPE, "quick": quick, "sources": {k: [p for p, _ in v] for k, v in pools.items()}}
    root = CACHE / "corpus" / ("quick" if quick else "full")
    manifest = root / "manifest.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("key") == key and all(Path(i["path"]).exists() for i in [*saved["items"], saved["big"]]):
            return _corpus(root, saved, recipe, 0.0)
    log(f"building the {'quick ' if quick else ''}corpus in {root} (cached afterwards)")
    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    decoded: dict[str, Image.Image] = {}
    items: list[dict[str, object]] = []
    for cls, (_, pool, size, fmt, options) in recipe.items():
        for path, package in pools[pool][:2]:
            if path not in decoded:
                decoded[path] = Image.open(path).convert("RGB")
            stem = Path(path).stem.split("_")[0] if "wallpapers" not in path else Path(path).parts[-4]
            name = f"{cls}-{stem.lower()}.{_EXTENSIONS[fmt]}"
            target = root / name
            _write(target, _encode(decoded[path], size, fmt, options))
            items.append(_row(target, cls, fmt, _label(path, package)))
    big_path, big_package = pools["large"][0]
    big_source = decoded.get(big_path) or Image.open(big_path).convert("RGB")
    big = root / "big-25mb.png"
    _write(big, _big_png(big_source, BIG_BYTES // (10 if quick else 1)))
    saved = {"key": key, "items": items, "big": _row(big, "big-png", "PNG", _label(big_path, big_package))}
    manifest.write_text(json.dumps(saved, indent=1))
    return _corpus(root, saved, recipe, time.monotonic() - t0)


def _label(path: str, package: str) -> str:
    """``Kleiber_by_Lukas_Baubkus.jpg (lomiri-wallpapers)``; Plasma names the folder, not the file."""
    parts = Path(path).parts
    name = f"{parts[-4]} {parts[-1]}" if "wallpapers" in parts and "contents" in parts else parts[-1]
    return f"{name} ({package})"


def _available(sources: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(p, pkg) for p, pkg in sources if os.path.exists(p)]


def _corpus(root: Path, saved: dict[str, object], recipe: Recipe, seconds: float) -> Corpus:
    rows = saved["items"]
    assert isinstance(rows, list)
    items = [Item(**row) for row in rows]
    big = saved["big"]
    assert isinstance(big, dict)
    return Corpus(
        root=root,
        items=items,
        big=Item(**big),
        sources=sorted({i.source for i in items}),
        classes={cls: str(spec[0]) for cls, spec in recipe.items()},
        seconds_to_build=seconds,
    )


def _row(path: Path, cls: str, fmt: str, source: str) -> dict[str, object]:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        width, height = im.size
    if cls == "jpeg-phone-exif6":
        width, height = height, width  # as displayed
    return asdict(Item(path.name, cls, str(path), fmt.lower(), width, height, path.stat().st_size, source))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Crop the middle to the target's aspect ratio, then resize (Lanczos) to it."""
    w, h = image.size
    tw, th = size
    if w * th > h * tw:
        cw, ch = h * tw // th, h
    else:
        cw, ch = w, w * th // tw
    left, top = (w - cw) // 2, (h - ch) // 2
    cropped = image.crop((left, top, left + cw, top + ch))
    return cropped if cropped.size == size else cropped.resize(size, Image.Resampling.LANCZOS)


def _encode(source: Image.Image, size: tuple[int, int], fmt: str, options: dict[str, object]) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG" and size == (4032, 3024):
        # A phone held upright: the sensor's landscape pixels, turned by EXIF orientation 6.
        portrait = _fit(source, (3024, 4032)).transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif.update({0x0112: 6, 0x010F: "Google", 0x0110: "Pixel 7", 0x0132: "2024:05:01 10:00:00"})
        portrait.save(out, "JPEG", exif=exif.tobytes(), **options)
        return out.getvalue()
    image = _fit(source, size)
    if fmt == "JPEG":
        image.save(out, "JPEG", **options)
    elif fmt == "PNG":
        if options.get("alpha"):
            image = image.copy()
            image.putalpha(_vignette(size))
        image.save(out, "PNG")
    elif fmt == "WEBP":
        image.save(out, "WEBP", method=4, **options)
    elif fmt == "AVIF":
        image.save(out, "AVIF", speed=6, **options)
    elif fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, format="HEIF", enc_params={"preset": "fast"}, **options)
    elif fmt == "GIF":
        image.quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(out, "GIF")
    return out.getvalue()


def _vignette(size: tuple[int, int]) -> Image.Image:
    """An alpha channel: opaque in the middle, fading to transparent at the edges."""
    from PIL import ImageOps

    gradient = ImageOps.invert(Image.radial_gradient("L"))  # 256x256, white in the middle
    return gradient.point(lambda v: min(255, v * 2)).resize(size, Image.Resampling.BILINEAR)


def _big_png(source: Image.Image, target: int) -> bytes:
    """A real photograph as PNG, resized until the file is within 20% under ``target`` bytes."""
    image = source
    for _ in range(6):
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
        size = out.tell()
        if 0.8 * target <= size <= target:
            break
        scale = (target / size) ** 0.5 * 0.97
        image = source.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
    return out.getvalue()
