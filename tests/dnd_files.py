"""Tiny Darmstadt Noise Dataset trees in the exact official file format, for tests.

The files are what MATLAB's ``save -v7.3`` writes: HDF5 with a 512-byte userblock that
starts with MATLAB's 128-byte header, arrays stored column-major (so h5py sees them
transposed), ``MATLAB_class`` attributes, and cells as object references into ``#refs#``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

#: MATLAB's class name of each dtype the writer stores.
_MATLAB_CLASS = {np.dtype(np.float64): b"double", np.dtype(np.float32): b"single"}


def _matlab_header() -> bytes:
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {time.asctime()} HDF5 schema 1.00 ."
    # 116 bytes of text, 8 bytes of subsystem offset, version 0x0200, endian indicator "IM".
    return text.encode("ascii").ljust(116, b" ") + b"\0" * 8 + b"\0\x02IM"


def _write_v73(path: Path, fill) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as file:
        fill(file)
    with open(path, "r+b") as raw:
        raw.write(_matlab_header())


def _matlab_array(parent: h5py.Group, name: str, array: np.ndarray) -> h5py.Dataset:
    """Store ``array`` as MATLAB does: reversed axis order, compressed, with its class."""
    array = np.asarray(array)
    dataset = parent.create_dataset(name, data=array.T, compression="gzip", compression_opts=3)
    dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[array.dtype])
    return dataset


def _matlab_cell(file: h5py.File, parent: h5py.Group, name: str, arrays: list[np.ndarray], first: int) -> int:
    """A N x 1 MATLAB cell (h5py shape (1, N)) of references to ``#refs#/<name>``; returns the next free ref."""
    refs = file.require_group("#refs#")
    cell = parent.create_dataset(name, shape=(1, len(arrays)), dtype=h5py.ref_dtype)
    for index, array in enumerate(arrays):
        cell[0, index] = _matlab_array(refs, _ref_name(first + index), array).ref
    cell.attrs["MATLAB_class"] = np.bytes_(b"cell")
    return first + len(arrays)


def _ref_name(index: int) -> str:
    # MATLAB names #refs# entries a, b, ..., z, A, ..., then two letters.
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < len(letters) else letters[index // len(letters) - 1] + letters[index % len(letters)]


def write_dnd_tree(
    root: Path,
    images: list[np.ndarray],
    boxes: list[np.ndarray],
    sigmas: Optional[list[np.ndarray]] = None,
) -> Path:
    """Write ``<root>/images_srgb/0001.mat …`` and ``<root>/info.mat`` as the DND release does.

    Args:
        root: The dataset folder to create.
        images: Noisy images (H, W, 3) in [0, 1]; float32 ones are stored as MATLAB
            ``single``, others as ``double``.
        boxes: Per image an (N, 4) array of MATLAB rows ``[r1, c1, r2, c2]``, 1-based and
            inclusive (the official convention); stored as doubles.
        sigmas: Per image one noise level per box (``info.sigma_srgb``); omitted when None.

    Returns:
        ``root``.
    """
    root = Path(root)
    for number, image in enumerate(images, start=1):
        array = image if image.dtype == np.float32 else np.asarray(image, dtype=np.float64)
        _write_v73(root / "images_srgb" / f"{number:04d}.mat", lambda file, a=array: _matlab_array(file, "InoisySRGB", a))

    def fill_info(file: h5py.File) -> None:
        refs = file.create_group("#refs#")
        empty = refs.create_dataset("a", data=np.zeros(2, dtype=np.uint64))  # MATLAB's canonical empty
        empty.attrs["MATLAB_class"], empty.attrs["MATLAB_empty"] = np.bytes_(b"double"), np.uint8(1)
        info = file.create_group("info")
        info.attrs["MATLAB_class"] = np.bytes_(b"struct")
        matrices = [np.asarray(b, dtype=np.float64) for b in boxes]
        following = _matlab_cell(file, info, "boundingboxes", matrices, first=1)
        if sigmas is not None:
            _matlab_cell(file, info, "sigma_srgb", [np.asarray(s, dtype=np.float64)[:, None] for s in sigmas], following)

    _write_v73(root / "info.mat", fill_info)
    return root


def grid_boxes(height: int, width: int, side: int, count: int = 20) -> np.ndarray:
    """``count`` distinct ``side`` x ``side`` MATLAB boxes ``[r1, c1, r2, c2]`` (1-based inclusive) on a grid."""
    rows, cols = (height - side) // (side // 2) + 1, (width - side) // (side // 2) + 1
    if rows * cols < count:
        raise ValueError(f"a {width}x{height} image has room for only {rows * cols} boxes of {side} px")
    corners = [(r * (side // 2), c * (side // 2)) for r in range(rows) for c in range(cols)][:count]
    return np.array([[y + 1, x + 1, y + side, x + side] for y, x in corners], dtype=np.float64)
