"""Image IO: every supported file becomes float32 HxWx3 RGB in [0, 1], and back.

Decoding is left to libraries: Pillow (JPEG, PNG, BMP, WebP; EXIF orientation, CMYK,
palettes), OpenCV (16-bit PNG, which Pillow reduces to 8 bits), tifffile (TIFF, 8/16-bit
and float) and rawpy/LibRaw (camera RAW). Any failure is one :class:`ImageReadError` line
naming the file and the problem.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import rawpy
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError

PathLike = Union[str, "os.PathLike[str]"]

#: Camera RAW extensions, decoded by rawpy (LibRaw).
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"}
)
#: Every extension :func:`read_image` and :func:`find_images` accept (lower case).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"} | RAW_EXTENSIONS
)
_TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# Pillow modes that carry transparency once converted to RGBA.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_EXIF_ORIENTATION = 0x0112
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # reading the umask sets it: put it back at once


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1].

    8-bit files are divided by 255, 16-bit ones by 65535. Grayscale becomes three equal
    channels; transparency (RGBA, LA, palette with tRNS) is composited on white, which is
    what image viewers show; CMYK is converted to RGB; the EXIF orientation is applied
    (JPEG/PNG/WebP via Pillow, TIFF via its Orientation tag). Camera RAW is developed by
    LibRaw with the camera white balance into 16-bit sRGB (sRGB tone curve, LibRaw's
    default auto-brightness).

    Args:
        path: The image file; the extension (any case) selects RAW/TIFF decoders,
            everything else is identified by its content.

    Returns:
        Array of shape (H, W, 3), dtype float32, values in [0, 1].

    Raises:
        ImageReadError: The file is missing, empty, unreadable, truncated or not an image.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot open ({_one_line(error)})") from None
    if not data:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if suffix in RAW_EXTENSIONS:
            image = _decode_raw(data)
        elif suffix in _TIFF_EXTENSIONS and not _is_cmyk_tiff(data):
            image = _decode_tiff(data)
        else:
            image = _decode_pillow(data)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: cannot identify the image format (not an image, or unsupported)") from None
    except Exception as error:  # decoders raise many types; the user needs one line
        raise ImageReadError(f"{path}: cannot decode image ({_one_line(error)})") from None
    return image


def write_image(path: PathLike, image: np.ndarray, bit_depth: int = 8, quality: int = 95) -> None:
    """Write a float RGB image atomically; the format follows the extension.

    The image is clipped to [0, 1], written to a hidden temporary file in the target
    folder and moved into place with :func:`os.replace`, so readers never see a partial
    file. Parent folders are created.

    Args:
        path: Output file: ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp``
            or ``.webp`` (any case).
        image: Array (H, W, 3) or (H, W), float, nominally in [0, 1].
        bit_depth: 8, or 16 for PNG and TIFF.
        quality: JPEG/WebP quality (1-100).

    Raises:
        UserError: Unsupported extension or bit depth for the format.
        ValueError: ``image`` is not (H, W) or (H, W, 3).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"write_image expects (H, W, 3) or (H, W), got shape {image.shape}")
    if suffix not in IMAGE_EXTENSIONS - RAW_EXTENSIONS:
        raise UserError(f"{path}: cannot write this format (use .png, .jpg, .tif, .bmp or .webp)")
    if bit_depth not in (8, 16) or (bit_depth == 16 and suffix not in {".png", *_TIFF_EXTENSIONS}):
        raise UserError(f"{path}: bit_depth={bit_depth} is not supported for {suffix} (8, or 16 for PNG/TIFF)")
    scale, dtype = (65535, np.uint16) if bit_depth == 16 else (255, np.uint8)
    # float32 in place: a 50 MP photo would need 1.2 GB per float64 copy
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    pixels *= scale
    pixels = np.rint(pixels, out=pixels).astype(dtype)

    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name in the same folder: same filesystem for os.replace, skipped by find_images.
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{suffix}.tmp", dir=path.parent)
    os.close(fd)
    os.chmod(temp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        if suffix in _TIFF_EXTENSIONS:
            tifffile.imwrite(temp_name, pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack")
        elif bit_depth == 16:  # Pillow cannot write 16-bit RGB PNG
            bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
            ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
            if not ok:
                raise UserError(f"{path}: OpenCV could not encode a 16-bit PNG")
            Path(temp_name).write_bytes(encoded.tobytes())
        else:
            file_format = Image.registered_extensions()[suffix]
            Image.fromarray(pixels).save(temp_name, format=file_format, quality=quality)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_file_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a hidden temporary file beside it, then a rename.

    Readers never see a partial file, and a failed write leaves no temporary file behind.
    The file gets the usual permissions (``0666`` minus the umask), like images.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def stored_bit_depth(path: PathLike) -> int:
    """Bits per sample the file stores (16 for 16-bit PNG/TIFF and camera RAW, else 8).

    Reads the header only. Used to write an output with the input's depth.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in RAW_EXTENSIONS:
            return 16
        if suffix in _TIFF_EXTENSIONS:
            with tifffile.TiffFile(path) as tif:
                return 16 if tif.pages.first.bitspersample > 8 else 8
        with Image.open(path) as opened:
            tile_args = opened.tile[0].args if opened.tile else None
            sixteen = opened.mode in ("I", "I;16", "I;16B", "I;16L") or (isinstance(tile_args, str) and ";16" in tile_args)
            return 16 if sixteen else 8
    except Exception:  # unreadable files are reported by read_image
        return 8


def find_images(folder: PathLike, recursive: bool = True) -> list[Path]:
    """List the image files in a folder, naturally sorted (``2.png`` before ``10.png``).

    Extensions match case-insensitively (``.JPG`` is a JPEG); hidden files and folders
    (``.DS_Store``, ``._IMG_1.jpg``, ``.cache/``) are skipped.

    Args:
        folder: Folder to search.
        recursive: Search sub-folders too.

    Returns:
        The image paths, sorted naturally by their path relative to ``folder``.

    Raises:
        DatasetLayoutError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: image folder not found")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    images = []
    for path in candidates:
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            images.append(path)
    return sorted(images, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``img2`` < ``img10``; case-insensitive."""
    # re.split with a capture group alternates text, digits, text, ... so types line up.
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text)))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def _to_rgb_float(pixels: np.ndarray) -> np.ndarray:
    """(H, W[, C]) integer or float array, C in 1-4 (gray, gray+alpha, RGB, RGBA) → RGB float."""
    if np.issubdtype(pixels.dtype, np.integer):
        image = pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)
    else:
        image = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported pixel array shape {pixels.shape}")
    if image.shape[2] in (2, 4):  # composite on white
        alpha = image[..., -1:]
        image = image[..., :-1] * alpha + (1.0 - alpha)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image, dtype=np.float32)


def _decode_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as opened:
        # The raw mode tells the stored bit depth; Pillow's PNG decoder drops RGB 16-bit to 8.
        tile_args = opened.tile[0].args if opened.tile else None
        sixteen_bit_png = opened.format == "PNG" and isinstance(tile_args, str) and ";16" in tile_args
        opened.load()  # decode now: truncated files fail here, not later
        if sixteen_bit_png and opened.mode not in ("I", "I;16", "I;16B", "I;16L"):
            return _decode_png16(data, orientation=opened.getexif().get(_EXIF_ORIENTATION, 1))
        image = ImageOps.exif_transpose(opened)
        mode = image.mode
        if mode.startswith("I;16") or mode == "I":
            return _to_rgb_float(np.asarray(image).astype(np.uint16))
        if mode == "F":
            return _to_rgb_float(np.asarray(image))
        if mode in _ALPHA_MODES or "transparency" in image.info:
            image = image.convert("RGBA")
        elif mode in ("1", "L"):
            image = image.convert("L")
        elif mode != "RGB":  # P, CMYK, YCbCr, LAB, HSV, RGBX ...
            image = image.convert("RGB")
        return _to_rgb_float(np.asarray(image))


def _decode_png16(data: bytes, orientation: int) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("OpenCV could not decode the 16-bit PNG")
    if pixels.ndim == 3:  # OpenCV order is BGR(A)
        pixels = pixels[..., [2, 1, 0, 3]] if pixels.shape[2] == 4 else pixels[..., ::-1]
    return _to_rgb_float(_apply_orientation(pixels, int(orientation)))


def _is_cmyk_tiff(data: bytes) -> bool:
    """CMYK TIFFs go to Pillow, which converts them; tifffile returns raw ink channels."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return tif.pages.first.photometric == tifffile.PHOTOMETRIC.SEPARATED
    except Exception:  # not a valid TIFF: let _decode_tiff report it
        return False


def _decode_tiff(data: bytes) -> np.ndarray:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        pixels = page.asarray()
        axes = page.axes
        orientation = page.tags.valueof("Orientation", 1)
    if pixels.ndim == 3 and axes.startswith("S"):  # planar configuration: samples first
        pixels = np.moveaxis(pixels, 0, -1)
    return _to_rgb_float(_apply_orientation(pixels, int(orientation)))


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply a TIFF/EXIF Orientation value (1-8) to an (H, W[, C]) array."""
    if orientation in (2, 4, 5, 7):  # mirrored variants: mirror left-right, then rotate
        pixels = pixels[:, ::-1]
    # Counter-clockwise quarter turns that make each orientation upright.
    turns = {1: 0, 2: 0, 3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}.get(orientation, 0)
    return np.rot90(pixels, turns)


def _decode_raw(data: bytes) -> np.ndarray:
    with rawpy.imread(io.BytesIO(data)) as raw:
        rgb = raw.postprocess(
            use_camera_wb=True,
            output_bps=16,
            output_color=rawpy.ColorSpace.sRGB,
            gamma=(2.4, 12.92),  # the sRGB tone curve (LibRaw's default is BT.709's)
        )
    return _to_rgb_float(rgb)
