"""The image pools of MDIE's three datasets, found on disk or built from the demo photos.

A pool is the set of images of one (dataset, quality) domain, e.g. "texture, low" = DPED's
phone patches. Pools only list files (nothing is decoded here); a pool may carry a
:class:`PhoneDegradation` that turns each drawn clean patch into its low-quality version.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from datamodules.datasets import ImageSource
from datamodules.degradations import PhoneDegradation
from datamodules.div2k import DIV2K_LAYOUT, named_images
from datamodules.io import find_images, read_image
from datamodules.paired import Layout, PairedDataModule
from mobile2dslr.errors import DatasetLayoutError


@dataclass
class DomainPool:
    """The images of one (dataset, quality) domain.

    Args:
        sources: Image files (read when drawn) or arrays in memory (float32 HxWx3 in [0, 1]).
        names: One name per source.
        degradation: Applied to every drawn patch (synthetic low quality), or ``None``.
        reader: Reads a file source (``read_image``; DND's ``.mat`` reader for DND).
    """

    sources: list[ImageSource]
    names: list[str]
    degradation: Optional[PhoneDegradation] = None
    reader: Callable[[Path], np.ndarray] = field(default=read_image)

    def load(self, index: int) -> np.ndarray:
        """The image ``index`` as float32 HxWx3; raises ``ImageReadError`` for a bad file."""
        source = self.sources[index]
        return self.reader(source) if isinstance(source, Path) else source

    def where(self) -> str:
        """The folder of the first file, for messages."""
        first = self.sources[0] if self.sources else None
        return str(first.parent) if isinstance(first, Path) else "demo images"


def clean_images(root: Optional[Path], folders: list[Path], pattern: Optional[str] = None) -> tuple[list[Path], list[str]]:
    """Clean photos: a DIV2K root's ``DIV2K_train_HR`` and/or plain folders (names ``<folder>/<stem>``).

    Args:
        root: A DIV2K folder (``DIV2K_valid_HR`` is not used: it is DIV2K's validation set).
        folders: More folders of clean images, searched recursively.
        pattern: Keep only files whose name matches this glob (case-insensitive).

    Raises:
        DatasetLayoutError: a folder is missing, not DIV2K, or has no (matching) image.
    """
    found: list[tuple[Path, str]] = []
    if root is not None:
        if not (root / "DIV2K_train_HR").is_dir():
            raise DatasetLayoutError(f"DIV2K layout not found under {root}: {DIV2K_LAYOUT}")
        found += named_images(root / "DIV2K_train_HR", prefix=False)
    for folder in folders:
        found += _filtered(named_images(folder, prefix=True), pattern, folder)
    return [path for path, _ in found], [name for _, name in found]


def texture_images(
    root: Path, layout: Layout, phone: str, lq_dir: str, hq_dir: str
) -> tuple[tuple[list[Path], list[str]], tuple[list[Path], list[str]]]:
    """Phone and DSLR files of a paired dataset, as two unpaired pools (PairedDataModule's layouts).

    DPED: ``training_data`` only (its ``test_data`` stays unseen); other layouts: every pair.

    Returns:
        ``(phone files, names), (DSLR files, names)``; names are the pairing keys.

    Raises:
        DatasetLayoutError: ``root`` holds none of the layouts (the message names them).
    """
    finder = PairedDataModule(str(root), layout=layout, phone=phone, lq_dir=lq_dir, hq_dir=hq_dir)
    pairs = finder.training_pairs()  # DPED's test_data stays unseen
    names = [pair.name for pair in pairs]
    return ([pair.lq for pair in pairs], names), ([pair.hq for pair in pairs], list(names))


def noisy_images(root: Path, pattern: Optional[str]) -> tuple[list[Path], list[str], Callable[[Path], np.ndarray]]:
    """Noisy photos: the official DND layout (``images_srgb/*.mat``) or a plain folder.

    Returns:
        The files, their names and the reader for them.

    Raises:
        DatasetLayoutError: ``root`` is missing or holds no (matching) image.
    """
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{root}: noisy image folder not found (expected <root>/images_srgb/0001.mat... (DND) "
            "or a folder of noisy images)"
        )
    try:  # written by another module; plain folders work without it
        from datamodules.dnd_format import find_dnd_images, is_dnd_root, read_dnd_image
    except ImportError:
        is_dnd_root = None
    if is_dnd_root is not None and is_dnd_root(root):
        paths = find_dnd_images(root)
        return paths, [path.stem for path in paths], read_dnd_image
    found = _filtered([(path, path.relative_to(root).with_suffix("").as_posix()) for path in find_images(root)], pattern, root)
    return [path for path, _ in found], [name for _, name in found], read_image


def _filtered(found: list[tuple[Path, str]], pattern: Optional[str], folder: Path) -> list[tuple[Path, str]]:
    if pattern is not None:
        found = [(path, name) for path, name in found if fnmatch.fnmatchcase(path.name.lower(), pattern.lower())]
    if not found:
        matching = f" matching {pattern!r}" if pattern is not None else ""
        raise DatasetLayoutError(f"{folder}: no images{matching} found")
    return found
