"""A folder of awkward but valid images and of broken files, written by the tests."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules import write_image


def _photo(height=48, width=64, seed=0) -> np.ndarray:
    """A smooth colourful image (not noise: JPEG and resampling behave as on photos)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    return np.clip(np.dstack([x, y, 0.5 + 0.3 * np.sin(6 * x + rng.uniform())]), 0, 1).astype(np.float32)


def good_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Write readable images of every awkward kind; returns name → expected (height, width)."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo()
    u8 = (photo * 255).astype(np.uint8)
    write_image(folder / "plain.png", photo)
    write_image(folder / "sixteen_bit.png", photo, bit_depth=16)
    write_image(folder / "tiny_1x1.png", photo[:1, :1])
    write_image(folder / "small_10x10.png", photo[:10, :10])
    Image.fromarray(u8[..., 0], "L").save(folder / "gray.jpg")
    Image.fromarray(np.dstack([u8, np.full(u8.shape[:2], 128, np.uint8)]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(u8).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(u8).convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed rotated 90° counter-clockwise
    Image.fromarray(u8).save(folder / "exif_rotated.jpg", exif=exif.tobytes())
    write_image(folder / "ünïcødé 写真.png", photo)
    return {
        "plain.png": (48, 64), "sixteen_bit.png": (48, 64), "tiny_1x1.png": (1, 1), "small_10x10.png": (10, 10),
        "gray.jpg": (48, 64), "rgba.png": (48, 64), "palette.png": (48, 64), "cmyk.jpg": (48, 64),
        "exif_rotated.jpg": (64, 48), "ünïcødé 写真.png": (48, 64),
    }


def bad_files(folder: Path) -> dict[str, str]:
    """Write unreadable files; returns name → a phrase the one-line error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    u8 = (_photo() * 255).astype(np.uint8)
    (folder / "empty.jpg").write_bytes(b"")
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(u8).save(jpeg, "JPEG")
    Image.fromarray(u8).save(png, "PNG")
    (folder / "cut_jpeg.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "cut_png.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (folder / "text.jpg").write_text("this is a shopping list, not a photo\n")
    return {"empty.jpg": "empty file", "cut_jpeg.jpg": "cannot decode", "cut_png.png": "cannot decode",
            "text.jpg": "cannot identify"}
