"""Image IO: exact round trips, every pixel format, EXIF orientation, one-line errors."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from datamodules.io import IMAGE_EXTENSIONS, RAW_EXTENSIONS, find_images, read_image, write_image
from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError


def _noise(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_one_line_error(path: Path) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_constants() -> None:
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"} <= IMAGE_EXTENSIONS
    assert {".dng", ".cr2", ".cr3", ".nef", ".arw"} <= RAW_EXTENSIONS <= IMAGE_EXTENSIONS


def test_png_8bit_round_trip_is_exact(tmp_path: Path) -> None:
    image = _noise().astype(np.float32) / 255
    write_image(tmp_path / "a.png", image)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.float32 and back.shape == (24, 32, 3)
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("name", ["a.png", "a.tif", "a.TIFF"])
def test_16bit_round_trip_keeps_precision(tmp_path: Path, name: str) -> None:
    levels = np.random.default_rng(1).integers(0, 65536, (20, 30, 3))
    image = levels.astype(np.float32) / np.float32(65535)
    write_image(tmp_path / name, image, bit_depth=16)
    back = read_image(tmp_path / name)
    np.testing.assert_array_equal(back, image)
    # Finer than 8 bits: an 8-bit path would leave every value on the k/255 grid.
    assert np.abs(back * 255 - np.round(back * 255)).max() > 0.1


def test_8bit_tiff_and_jpeg(tmp_path: Path) -> None:
    image = _noise().astype(np.float32) / 255
    write_image(tmp_path / "a.tif", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), image)
    smooth = np.broadcast_to(np.linspace(0.2, 0.8, 32, dtype=np.float32)[None, :, None], (24, 32, 3))
    write_image(tmp_path / "a.jpg", smooth, quality=95)
    assert np.abs(read_image(tmp_path / "a.jpg") - smooth).max() < 0.03


def test_grayscale_png_8_and_16_bit(tmp_path: Path) -> None:
    gray = _noise()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g8.png")
    back = read_image(tmp_path / "g8.png")
    assert back.shape == (24, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(back[..., channel], gray / np.float32(255))
    gray16 = np.random.default_rng(2).integers(0, 65536, (24, 32)).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 1], gray16 / np.float32(65535))


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[0, 2, 3] = 0, 255, 102  # transparent, opaque, 40 %
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    back = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(back[0, 0], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(back[0, 1], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(back[0, 2], [1, 0.6, 0.6], atol=1e-6)


def test_palette_png_with_and_without_transparency(tmp_path: Path) -> None:
    palette_image = Image.fromarray(_noise()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_image.save(tmp_path / "p.png")
    expected = np.asarray(palette_image.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)
    index = int(np.asarray(palette_image)[0, 0])
    palette_image.save(tmp_path / "t.png", transparency=index)
    back = read_image(tmp_path / "t.png")
    np.testing.assert_array_equal(back[0, 0], [1, 1, 1])


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    source = (200, 60, 30)
    Image.new("RGB", (32, 32), source).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    back = read_image(tmp_path / "cmyk.jpg")
    assert back.shape == (32, 32, 3)
    np.testing.assert_allclose(back.mean(axis=(0, 1)), np.array(source) / 255, atol=0.03)


@pytest.mark.parametrize(("orientation", "red_corner"), [(6, "top_right"), (8, "bottom_left"), (3, "bottom_right")])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, red_corner: str) -> None:
    pixels = np.zeros((32, 48, 3), dtype=np.uint8)  # 48 wide, 32 high
    pixels[:16, :16] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=95)
    back = read_image(tmp_path / "r.jpg")
    height, width = back.shape[:2]
    assert (height, width) == ((48, 32) if orientation in (6, 8) else (32, 48))
    corners = {
        "top_left": back[4, 4],
        "top_right": back[4, width - 5],
        "bottom_left": back[height - 5, 4],
        "bottom_right": back[height - 5, width - 5],
    }
    for corner, pixel in corners.items():
        is_red = pixel[0] > 0.8 and pixel[1] < 0.2
        assert is_red == (corner == red_corner), corner


def test_tiff_orientation_tag_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((32, 48, 3), dtype=np.uint8)
    pixels[:16, :16] = 255
    tifffile.imwrite(tmp_path / "r.tif", pixels, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    back = read_image(tmp_path / "r.tif")
    assert back.shape == (48, 32, 3)
    assert back[4, 28].min() == 1.0 and back[4, 4].max() == 0.0


def test_unreadable_files_raise_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.touch()
    assert "empty" in _assert_one_line_error(empty)
    assert "not found" in _assert_one_line_error(tmp_path / "missing.jpg")
    (tmp_path / "folder.png").mkdir()
    _assert_one_line_error(tmp_path / "folder.png")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a JPEG\nsecond line\n")
    assert "cannot identify" in _assert_one_line_error(text)
    fake_raw = tmp_path / "photo.DNG"
    fake_raw.write_text("not a raw file")
    _assert_one_line_error(fake_raw)


@pytest.mark.parametrize("name", ["big.png", "big.jpg"])
def test_truncated_files_raise_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    Image.fromarray(_noise(128, 128)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _assert_one_line_error(path).lower()


def test_permission_error_raises_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.png"
    write_image(path, np.zeros((4, 4, 3)))
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):  # tests run as root: chmod would not stop us
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    assert "permission denied" in _assert_one_line_error(path)


def test_non_ascii_name_and_parent_creation(tmp_path: Path) -> None:
    path = tmp_path / "новая папка" / "写真 été.png"
    image = _noise().astype(np.float32) / 255
    write_image(path, image)
    np.testing.assert_array_equal(read_image(path), image)
    assert find_images(tmp_path) == [path]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    write_image(target, np.full((8, 8, 3), 0.5))
    write_image(tmp_path / "out.tif", np.full((8, 8, 3), 0.5), bit_depth=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.tif"]
    before = target.read_bytes()

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, np.zeros((8, 8, 3)))
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.tif"]  # no temp file left


def test_write_clips_and_rejects_bad_requests(tmp_path: Path) -> None:
    write_image(tmp_path / "c.png", np.array([[[-0.5, 0.5, 2.0]]]))
    np.testing.assert_array_equal(read_image(tmp_path / "c.png")[0, 0], [0, np.float32(128) / 255, 1])
    with pytest.raises(UserError, match="bit_depth"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3)), bit_depth=16)
    with pytest.raises(UserError, match="cannot write"):
        write_image(tmp_path / "a.gif", np.zeros((4, 4, 3)))


def test_find_images_natural_sort_case_and_hidden(tmp_path: Path) -> None:
    pixels = np.zeros((2, 2, 3))
    for name in ["10.png", "2.png", "1.JPG", "sub/3.jpeg", "sub/deeper/4.TIF", ".DS_Store", "._5.jpg", "notes.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            write_image(path, pixels)
        else:
            path.write_bytes(b"\x00\x01")
    (tmp_path / ".hidden").mkdir()
    write_image(tmp_path / ".hidden" / "6.png", pixels)
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["1.JPG", "2.png", "10.png", "sub/3.jpeg", "sub/deeper/4.TIF"]
    flat = [p.name for p in find_images(tmp_path, recursive=False)]
    assert flat == ["1.JPG", "2.png", "10.png"]
    with pytest.raises(DatasetLayoutError, match="not found"):
        find_images(tmp_path / "nope")
