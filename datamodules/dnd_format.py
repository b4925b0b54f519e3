"""The official files of the Darmstadt Noise Dataset (DND, Plötz & Roth, CVPR 2017), sRGB track.

As the DND submission kit (``dnd_denoise.py``, ``bundle_submissions.py``) reads and writes them:

- ``<root>/images_srgb/0001.mat … 0050.mat``: MATLAB v7.3 files (HDF5 behind a 512-byte
  header), variable ``InoisySRGB``: the noisy H x W x 3 image in [0, 1]. HDF5 stores
  MATLAB arrays column-major, so h5py sees it transposed, with shape (3, W, H).
- ``<root>/info.mat`` (v7.3): struct ``info`` whose cell ``boundingboxes`` (h5py shape
  (1, 50), object references) holds per image a 20 x 4 matrix of rows
  ``[r1, c1, r2, c2]``, 1-based and inclusive (h5py shape (4, 20)); ``sigma_srgb``
  holds per image the mean noise level of each box.
- Submission: per box ``<out>/NNNN_BB.mat`` with ``Idenoised_crop`` (float32 h x w x 3),
  then per image ``<out>/bundled/NNNN.mat`` with ``Idenoised`` (a 1 x 20 cell of the
  crops), ``israw`` (false) and ``eval_version`` ("1.0"), both written with
  ``scipy.io.savemat`` (MATLAB v5). The ``bundled/`` folder is what gets uploaded.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import scipy.io

from datamodules.io import write_file_atomic
from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError

#: The variable of an ``images_srgb`` file that holds the noisy image.
IMAGE_KEY = "InoisySRGB"
#: What the official layout looks like, for error messages.
DND_LAYOUT = "<root>/images_srgb/0001.mat … 0050.mat (MATLAB v7.3, InoisySRGB) and <root>/info.mat (boundingboxes)"
_IMAGE_NAME = re.compile(r"\d+\.mat", re.IGNORECASE)

__all__ = [
    "DND_LAYOUT",
    "box_crops",
    "check_boxes",
    "dnd_image_size",
    "find_dnd_images",
    "is_dnd_root",
    "read_dnd_boxes",
    "read_dnd_image",
    "read_dnd_sigmas",
    "write_dnd_submission",
]


def is_dnd_root(root: Path) -> bool:
    """Whether ``root`` holds the official layout's images (``<root>/images_srgb/NNNN.mat``)."""
    return bool(find_dnd_images(Path(root)))


def find_dnd_images(root: Path) -> list[Path]:
    """The ``<root>/images_srgb/NNNN.mat`` files, in numeric order (empty when there are none)."""
    folder = Path(root) / "images_srgb"
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if _IMAGE_NAME.fullmatch(path.name) and path.is_file()]
    return sorted(found, key=lambda path: int(path.stem))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _open_mat(path: Path, what: str, error: type[Exception]) -> h5py.File:
    if not path.is_file():
        raise error(f"{path}: {what} not found" if not path.exists() else f"{path}: is not a file")
    try:
        return h5py.File(path, "r")
    except OSError as err:  # not HDF5 (e.g. a MATLAB v5 file), truncated, unreadable
        raise error(f"{path}: cannot read it as a MATLAB v7.3 (HDF5) file ({_one_line(err)})") from None


def _image_dataset(file: h5py.File, path: Path) -> h5py.Dataset:
    dataset = file.get(IMAGE_KEY)
    if not isinstance(dataset, h5py.Dataset):
        found = ", ".join(sorted(key for key in file.keys() if not key.startswith("#"))) or "nothing"
        raise ImageReadError(f"{path}: no {IMAGE_KEY} variable (found {found}); expected a DND images_srgb file")
    if dataset.ndim != 3 or dataset.shape[0] != 3 or dataset.dtype.kind not in "fiu":
        raise ImageReadError(
            f"{path}: {IMAGE_KEY} has HDF5 shape {dataset.shape} ({dataset.dtype}); "
            "expected a numeric H x W x 3 MATLAB image, stored as (3, W, H)"
        )
    return dataset


def dnd_image_size(path: Path) -> tuple[int, int]:
    """(H, W) of a DND image file, from its header only.

    Raises:
        ImageReadError: missing, not a MATLAB v7.3 file, no ``InoisySRGB`` or a wrong shape.
    """
    path = Path(path)
    with _open_mat(path, "DND image", ImageReadError) as file:
        _, width, height = _image_dataset(file, path).shape
    return int(height), int(width)


def read_dnd_image(path: Path, region: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """Read a DND noisy sRGB image (or a region of it) as the kit does: ``InoisySRGB`` transposed.

    Args:
        path: An ``images_srgb/NNNN.mat`` file.
        region: ``(y0, x0, y1, x1)``, 0-based and half-open: read only these pixels
            (HDF5 reads just the chunks they lie in); ``None`` reads the whole image.

    Returns:
        Array (H, W, 3), float32, clipped to [0, 1].

    Raises:
        ImageReadError: missing, not HDF5, truncated, no ``InoisySRGB`` or a wrong shape
            (one line naming the file).
    """
    path = Path(path)
    with _open_mat(path, "DND image", ImageReadError) as file:
        dataset = _image_dataset(file, path)
        try:
            if region is None:
                stored = dataset[()]
            else:
                y0, x0, y1, x1 = region
                stored = dataset[:, x0:x1, y0:y1]
        except (OSError, ValueError, RuntimeError) as err:  # truncated or corrupt data chunks
            reason = _one_line(err)
            raise ImageReadError(f"{path}: {IMAGE_KEY} cannot be read, the file is truncated or corrupt ({reason})") from None
    image = np.ascontiguousarray(stored.T, dtype=np.float32)
    return np.clip(image, 0.0, 1.0, out=image)


def _info_cell(info_path: Path, field: str, required: bool = True) -> Optional[list[np.ndarray]]:
    """The arrays of cell ``info.<field>`` of an ``info.mat``, one per image, as h5py stores them.

    ``None`` when the cell is absent and not ``required``.
    """
    with _open_mat(info_path, "DND info.mat", DatasetLayoutError) as file:
        info = file.get("info")
        cell = info.get(field) if isinstance(info, h5py.Group) else None
        if not isinstance(cell, h5py.Dataset) or h5py.check_ref_dtype(cell.dtype) is not h5py.Reference:
            if not required:
                return None
            raise DatasetLayoutError(f"{info_path}: no info.{field} cell (object references) in it; expected DND's info.mat")
        try:
            return [np.asarray(file[ref]) for ref in np.asarray(cell).reshape(-1)]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetLayoutError(f"{info_path}: info.{field} cannot be read ({_one_line(err)})") from None


def read_dnd_boxes(info_path: Path) -> list[np.ndarray]:
    """The benchmark boxes of every image, from ``info.mat``.

    Args:
        info_path: The dataset's ``info.mat``.

    Returns:
        Per image (in image-number order) an int64 array (20, 4) of
        ``[y0, x0, y1, x1)``: 0-based, half-open (the kit crops ``Inoisy[r1-1:r2, c1-1:c2]``).

    Raises:
        DatasetLayoutError: missing or unreadable file, no ``info.boundingboxes``, or boxes
            that are not ``[r1, c1, r2, c2]`` rows with ``1 <= r1 <= r2`` and ``1 <= c1 <= c2``.
    """
    info_path = Path(info_path)
    boxes = []
    for number, stored in enumerate(_info_cell(info_path, "boundingboxes"), start=1):
        rows = np.asarray(stored, dtype=np.float64).T  # MATLAB's N x 4 matrix
        if rows.ndim != 2 or rows.shape[1] != 4 or not len(rows):
            shape = np.shape(stored)
            raise DatasetLayoutError(f"{info_path}: boxes of image {number} have HDF5 shape {shape}; expected (4, N)")
        r1, c1, r2, c2 = rows.T
        if np.any(rows != np.round(rows)) or np.any(r1 < 1) or np.any(c1 < 1) or np.any(r2 < r1) or np.any(c2 < c1):
            raise DatasetLayoutError(f"{info_path}: boxes of image {number} are not 1-based inclusive [r1, c1, r2, c2] rows")
        boxes.append(np.stack([r1 - 1, c1 - 1, r2, c2], axis=1).astype(np.int64))
    return boxes


def read_dnd_sigmas(info_path: Path) -> Optional[list[np.ndarray]]:
    """The mean sRGB noise level of every box (``info.sigma_srgb``), or ``None`` when absent.

    Returns:
        Per image a float64 array with one value per box, read as the kit's
        ``load_sigma_srgb`` does (``stored[0, box]``).

    Raises:
        DatasetLayoutError: ``info.mat`` is missing or unreadable.
    """
    stored = _info_cell(Path(info_path), "sigma_srgb", required=False)
    if stored is None:
        return None
    return [np.atleast_2d(np.asarray(values, dtype=np.float64))[0] for values in stored]


def box_crops(image: np.ndarray, boxes: np.ndarray, where: str) -> list[np.ndarray]:
    """Cut an image's benchmark boxes, refusing boxes that reach outside it.

    Args:
        image: The whole image (H, W, 3).
        boxes: Its (N, 4) ``[y0, x0, y1, x1)`` boxes (from :func:`read_dnd_boxes`).
        where: The image file, for messages.

    Returns:
        The N crops, copies in box order.

    Raises:
        DatasetLayoutError: a box lies (partly) outside the image.
    """
    check_boxes(boxes, image.shape[:2], where)
    return [image[y0:y1, x0:x1].copy() for y0, x0, y1, x1 in boxes]


def check_boxes(boxes: np.ndarray, size: tuple[int, int], where: str) -> None:
    """Refuse boxes that reach outside an image of ``size`` (H, W).

    Raises:
        DatasetLayoutError: naming ``where`` (the image file), the box and the image size.
    """
    height, width = size
    for index, (y0, x0, y1, x1) in enumerate(boxes, start=1):
        if y1 > height or x1 > width:
            raise DatasetLayoutError(
                f"{where}: box {index} (rows {y0 + 1}-{y1}, columns {x0 + 1}-{x1}) lies outside the "
                f"{width}x{height} image; info.mat does not belong to these images"
            )


def _savemat_bytes(variables: dict) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    return buffer.getvalue()


def write_dnd_submission(
    folder: Path, crops: dict[tuple[int, int], np.ndarray], overwrite: bool = False
) -> Path:
    """Write denoised boxes as the kit does: per-box files, then one bundle per image.

    Every file is written atomically (a hidden temporary file beside it, then a rename).
    Call it once per image (or with several images at once) to keep memory small.

    Args:
        folder: The submission folder (created when missing).
        crops: ``{(image_number, box_number): crop}``, both 1-based (``(1, 1)`` is
            ``0001_01.mat``), each crop (h, w, 3) in [0, 1]; every image given must have
            all its boxes, numbered 1..N.
        overwrite: Replace files that already exist instead of refusing.

    Returns:
        The ``bundled/`` folder, whose files are what DND's site takes.

    Raises:
        UserError: A target file exists (and not ``overwrite``), or an image's boxes are
            not numbered 1..N.
        ValueError: A crop is not an (h, w, 3) array.
    """
    folder = Path(folder)
    bundled = folder / "bundled"
    per_image: dict[int, dict[int, np.ndarray]] = {}
    for (number, box), crop in crops.items():
        crop = np.asarray(crop, dtype=np.float32)
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"DND crop ({number}, {box}) must be (h, w, 3), got shape {crop.shape}")
        per_image.setdefault(int(number), {})[int(box)] = crop
    for number, boxes in per_image.items():
        if sorted(boxes) != list(range(1, len(boxes) + 1)):
            raise UserError(f"DND image {number:04d}: boxes {sorted(boxes)} given; a bundle needs boxes 1..N, all of them")
    targets = [folder / f"{n:04d}_{b:02d}.mat" for n, boxes in per_image.items() for b in boxes]
    targets += [bundled / f"{n:04d}.mat" for n in per_image]
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]}: already exists ({len(existing)} submission file(s)); pass overwrite to replace them")
    for number, boxes in sorted(per_image.items()):
        cell = np.empty((len(boxes),), dtype=object)  # a MATLAB 1 x N cell, as the kit builds it
        for box, crop in sorted(boxes.items()):
            write_file_atomic(folder / f"{number:04d}_{box:02d}.mat", _savemat_bytes({"Idenoised_crop": crop}))
            cell[box - 1] = crop
        bundle = {"Idenoised": cell, "israw": False, "eval_version": "1.0"}
        write_file_atomic(bundled / f"{number:04d}.mat", _savemat_bytes(bundle))
    return bundled
