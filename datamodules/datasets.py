"""Dataset classes shared by the DataModules.

Items are dicts ``{"lq": (3, H, W), "hq": (3, H, W), "name": str}`` of float32 tensors in
[0, 1] (predict items may lack ``hq``). Training datasets are DPED-style: every item is a
random patch of a random image, ``__len__`` is the epoch length and the index is ignored;
the randomness comes from NumPy's global generator, seeded per DataLoader worker.
Evaluation datasets are deterministic: same images, same crops, same degradation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.degradations import PhoneDegradation
from datamodules.io import read_image
from datamodules.transforms import (
    apply_training_crop,
    center_crop,
    common_top_left,
    item_generators,
    to_tensor,
    training_crop,
)
from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError

log = logging.getLogger(__name__)

#: An HQ image: a file read lazily, or an array already in memory (float32 HxWx3 in [0, 1]).
ImageSource = Union[Path, np.ndarray]
Item = dict[str, Union[torch.Tensor, str]]
# Evaluation sets keep decoded items in memory up to this many bytes (per worker).
CACHE_BYTES = 512 * 2**20
T = TypeVar("T")


@dataclass(frozen=True)
class ImagePair:
    """A phone (LQ) file, its DSLR (HQ) twin and the pair's name (unique within a split)."""

    lq: Path
    hq: Path
    name: str


def _load(source: ImageSource) -> np.ndarray:
    return read_image(source) if isinstance(source, Path) else source


class ItemCache:
    """Keeps decoded items (dicts of tensors or arrays) in memory while their total size stays under a budget."""

    def __init__(self, budget_bytes: int = CACHE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.items: dict[int, Item] = {}
        self.used_bytes = 0

    def get(self, index: int) -> Optional[Item]:
        return self.items.get(index)

    def put(self, index: int, item: Item) -> Item:
        size = sum(v.nbytes if isinstance(v, np.ndarray) else v.numel() * v.element_size()
                   for v in item.values() if isinstance(v, (np.ndarray, torch.Tensor)))
        if self.used_bytes + size <= self.budget_bytes:
            self.items[index] = item
            self.used_bytes += size
        return item


class SkipUnreadable:
    """Draws a random item again when its file cannot be read, warning once per file.

    A training run over thousands of files should not die hours in because of one
    truncated JPEG: the bad file is reported in one line and never drawn again (per
    DataLoader worker). Only when every file is unreadable does the run stop.
    """

    def __init__(self, count: int, where: str) -> None:
        self.count, self.where = count, where
        self.bad: set[int] = set()

    def draw(self, generator: np.random.Generator, load: Callable[[int], Item]) -> Item:
        while len(self.bad) < self.count:
            index = int(generator.integers(self.count))
            if index in self.bad:
                continue
            try:
                return load(index)
            except ImageReadError as err:
                self.bad.add(index)
                log.warning("skipping unreadable training image (%d of %d so far): %s", len(self.bad), self.count, err)
        raise DatasetLayoutError(f"{self.where}: none of the {self.count} training images can be read")


def drop_unreadable(items: Sequence[T], files: Callable[[T], Sequence[Path]], split: str) -> list[T]:
    """Decode every file of an evaluation split once; warn about and drop unreadable ones.

    Evaluation runs in the middle of training: a bad file must be found before that.

    Raises:
        DatasetLayoutError: nothing readable is left.
    """
    kept = []
    for item in items:
        try:
            for file in files(item):
                read_image(file)
        except ImageReadError as err:
            log.warning("skipping unreadable %s image: %s", split, err)
            continue
        kept.append(item)
    if items and not kept:
        first = files(items[0])[0]
        raise DatasetLayoutError(f"{first.parent}: none of the {len(items)} {split} images can be read")
    return kept


class PairedPatchDataset(Dataset):
    """Training patches of real pairs: a random pair, an identical random crop and flip of both.

    Args:
        pairs: The training pairs (files are read when an item is drawn).
        patch_size: Side of the square patches; smaller images are reflect-padded.
        samples_per_epoch: Items per epoch (``__len__``).
    """

    def __init__(self, pairs: Sequence[ImagePair], patch_size: int, samples_per_epoch: int) -> None:
        self.pairs = list(pairs)
        self.samples_per_epoch = samples_per_epoch
        self.crop = training_crop(patch_size, paired=True)
        self.skip = SkipUnreadable(len(self.pairs), str(self.pairs[0].lq.parent) if self.pairs else "")

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()

        def load(choice: int) -> Item:
            pair = self.pairs[choice]
            lq, hq = common_top_left(read_image(pair.lq), read_image(pair.hq))
            lq, hq = apply_training_crop(self.crop, generators, lq, hq)
            return {"lq": to_tensor(lq), "hq": to_tensor(hq), "name": pair.name}

        return self.skip.draw(generators[0], load)


class PairedImageDataset(Dataset):
    """Evaluation pairs: whole images (or a centre crop), cropped to their common size.

    Args:
        pairs: The pairs, in a fixed order.
        crop: Side of a centre crop, or ``None`` for the full images.
    """

    def __init__(self, pairs: Sequence[ImagePair], crop: Optional[int] = None) -> None:
        self.pairs = list(pairs)
        self.crop = crop
        self.cache = ItemCache()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Item:
        cached = self.cache.get(index)
        if cached is not None:
            return cached
        pair = self.pairs[index]
        lq, hq = common_top_left(read_image(pair.lq), read_image(pair.hq))
        item = {"lq": to_tensor(center_crop(lq, self.crop)), "hq": to_tensor(center_crop(hq, self.crop)), "name": pair.name}
        return self.cache.put(index, item)


class ImageDataset(Dataset):
    """Prediction inputs: LQ image files only, full size.

    Args:
        paths: The image files.
        names: One unique name per file.
    """

    def __init__(self, paths: Sequence[Path], names: Sequence[str]) -> None:
        self.paths = list(paths)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        return {"lq": to_tensor(read_image(self.paths[index])), "name": self.names[index]}


class DegradedPatchDataset(Dataset):
    """Training patches of clean images, degraded on the fly: crop HQ first, then degrade it.

    Args:
        images: Clean images (files read when drawn, or arrays in memory).
        names: One name per image.
        degradation: Makes the LQ patch from the HQ patch.
        patch_size: Side of the square patches; smaller images are reflect-padded.
        samples_per_epoch: Items per epoch (``__len__``).
    """

    def __init__(
        self,
        images: Sequence[ImageSource],
        names: Sequence[str],
        degradation: PhoneDegradation,
        patch_size: int,
        samples_per_epoch: int,
    ) -> None:
        self.images = list(images)
        self.names = list(names)
        self.degradation = degradation
        self.samples_per_epoch = samples_per_epoch
        self.crop = training_crop(patch_size, paired=False)
        first = self.images[0] if self.images else None
        self.skip = SkipUnreadable(len(self.images), str(first.parent) if isinstance(first, Path) else "training images")

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()

        def load(choice: int) -> Item:
            hq, _ = apply_training_crop(self.crop, generators, _load(self.images[choice]))
            lq = self.degradation.degrade(hq, seed=int(generators[0].integers(2**31 - 1)))
            return {"lq": to_tensor(lq), "hq": to_tensor(hq), "name": self.names[choice]}

        return self.skip.draw(generators[0], load)


class DegradedImageDataset(Dataset):
    """Evaluation images degraded deterministically: image ``i`` uses seed ``seed + i``.

    Args:
        images: Clean images (files or arrays), in a fixed order.
        names: One unique name per image.
        degradation: Makes the LQ image from the HQ image.
        seed: Base seed of the degradation.
        crop: Side of a centre crop taken before degrading, or ``None`` for full images.
    """

    def __init__(
        self,
        images: Sequence[ImageSource],
        names: Sequence[str],
        degradation: PhoneDegradation,
        seed: int = 0,
        crop: Optional[int] = None,
    ) -> None:
        self.images = list(images)
        self.names = list(names)
        self.degradation = degradation
        self.seed = seed
        self.crop = crop
        self.cache = ItemCache()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Item:
        cached = self.cache.get(index)
        if cached is not None:
            return cached
        hq = center_crop(_load(self.images[index]), self.crop)
        lq = self.degradation.degrade(hq, seed=self.seed + index)
        return self.cache.put(index, {"lq": to_tensor(lq), "hq": to_tensor(hq), "name": self.names[index]})


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
    train: bool = False,
) -> DataLoader:
    """A DataLoader with the project's conventions.

    Args:
        dataset: The dataset.
        batch_size: Items per batch.
        num_workers: Worker processes (0 loads in the main process); workers persist
            across epochs so caches and generators survive.
        pin_memory: Pin batches for faster host-to-GPU copies.
        train: Training loader: ``drop_last=True`` so every batch is full. No shuffling:
            training items are random whatever their index.

    Returns:
        The DataLoader.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=train,
        persistent_workers=num_workers > 0,
    )


def hold_out(pairs: Sequence[T], fraction: float, where: Path) -> tuple[list[T], list[T]]:
    """Split off ``fraction`` of a sorted list (at least one item), evenly spaced, deterministic.

    Args:
        pairs: Items in their natural order.
        fraction: Share to hold out, in (0, 1).
        where: The dataset folder, for messages.

    Returns:
        The kept items and the held-out items, both in the original order.
    """
    if len(pairs) < 2:
        raise DatasetLayoutError(f"{where}: {len(pairs)} item(s) cannot be split into training and validation")
    count = min(len(pairs) - 1, max(1, round(fraction * len(pairs))))
    held = {int((i + 0.5) * len(pairs) / count) for i in range(count)}
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def check_loader_args(patch_size: int, batch_size: int, samples_per_epoch: int, owner: str) -> None:
    """Reject sizes that cannot give a full training batch (one clear line)."""
    if patch_size < 1 or batch_size < 1:
        raise UserError(f"{owner}: patch_size and batch_size must be positive, got {patch_size} and {batch_size}")
    if samples_per_epoch < batch_size:
        raise UserError(f"{owner}: samples_per_epoch ({samples_per_epoch}) must be >= batch_size ({batch_size})")
