"""Datasets of unpaired phone photos, each item carrying a professional reference.

Items are dicts ``{"lq": (3, H, W), "ref": (3, H', W'), "name": str, "ref_name": str}``
(plus ``"hq"`` when a clean target is known, as in the demo). The reference of a phone
photo is drawn from its recommended references (the ``recommend --csv`` file) when
there are any, else from all professional photos.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import albumentations as A
import numpy as np
from torch.utils.data import Dataset

from datamodules.datasets import ImageSource, Item, ItemCache, _load, SkipUnreadable
from datamodules.transforms import apply_training_crop, center_crop, item_generators, to_tensor, training_crop
from mobile2dslr.errors import DatasetLayoutError

__all__ = ["UnpairedPatchDataset", "UnpairedImageDataset", "read_references", "shrink"]


def shrink(image: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """Downscale so the long side is at most ``max_side`` (area interpolation); never enlarge."""
    if max_side is None or max(image.shape[:2]) <= max_side:
        return image
    return A.LongestMaxSize(max_size=max_side, p=1.0)(image=image)["image"]


def read_references(path: Path, lq_names: Sequence[str], ref_names: Sequence[str], top_k: int) -> dict[int, list[int]]:
    """Read a ``recommend --csv`` file: each phone photo's ``top_k`` best references.

    Columns ``image,reference,rank`` (``distance`` optional). ``image`` and ``reference``
    match a phone/professional photo by relative path, file name or stem.

    Returns:
        Phone photo index → reference indices, best first (photos not in the file are absent).

    Raises:
        DatasetLayoutError: unreadable file, missing columns, or a row naming an unknown photo.
    """

    def lookup(names: Sequence[str]) -> dict[str, int]:
        keys: dict[str, int] = {}
        for index, name in enumerate(names):
            for key in (name, Path(name).name, Path(name).stem):
                keys.setdefault(key, index)
        return keys

    lq_keys, ref_keys = lookup(lq_names), lookup(ref_names)
    ranked: dict[int, list[tuple[float, int]]] = {}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"image", "reference", "rank"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetLayoutError(f"{path}: references CSV lacks column(s) {sorted(missing)}; expected image,reference,rank")
            for row_number, row in enumerate(reader, start=2):
                image, reference = row["image"] or "", row["reference"] or ""
                lq = next((lq_keys[k] for k in (image, Path(image).name, Path(image).stem) if k in lq_keys), None)
                ref = next((ref_keys[k] for k in (reference, Path(reference).name, Path(reference).stem) if k in ref_keys), None)
                if ref is None:
                    raise DatasetLayoutError(f"{path}: row {row_number}: reference {reference!r} is not among the professional photos")
                if lq is None:
                    continue  # a photo of another split or dataset
                try:
                    rank = float(row["rank"])
                except ValueError:
                    raise DatasetLayoutError(f"{path}: row {row_number}: rank {row['rank']!r} is not a number") from None
                ranked.setdefault(lq, []).append((rank, ref))
    except OSError as err:
        raise DatasetLayoutError(f"{path}: cannot read references CSV ({err.strerror or err})") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetLayoutError(f"{path}: not a CSV file ({err})") from None
    return {lq: [ref for _, ref in sorted(refs)[:top_k]] for lq, refs in ranked.items()}


class UnpairedPatchDataset(Dataset):
    """Training items: a random crop of a random phone photo and a crop of one of its references.

    Args:
        lq: Phone photos (files or arrays).
        lq_names: One name per phone photo.
        refs: Professional photos (files or arrays).
        ref_names: One name per professional photo.
        references: Phone photo index → candidate reference indices (a random one is
            drawn per item); photos without candidates draw from all references.
        patch_size: Side of both square crops (smaller images are reflect-padded).
        samples_per_epoch: Items per epoch.
        max_side: Downscale each photo to this long side before cropping (``None``: native).
    """

    def __init__(
        self,
        lq: Sequence[ImageSource],
        lq_names: Sequence[str],
        refs: Sequence[ImageSource],
        ref_names: Sequence[str],
        references: dict[int, list[int]],
        patch_size: int,
        samples_per_epoch: int,
        max_side: Optional[int] = None,
    ) -> None:
        self.lq, self.lq_names = list(lq), list(lq_names)
        self.refs, self.ref_names = list(refs), list(ref_names)
        self.references = references
        self.samples_per_epoch = samples_per_epoch
        self.max_side = max_side
        self.crop = training_crop(patch_size, paired=False)
        self.skip_lq = SkipUnreadable(len(self.lq), _where(self.lq, "phone photos"))
        self.skip_ref = SkipUnreadable(len(self.refs), _where(self.refs, "professional photos"))

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()
        rng = generators[0]

        def load_lq(choice: int) -> Item:
            patch, _ = apply_training_crop(self.crop, generators, shrink(_load(self.lq[choice]), self.max_side))
            return {"lq": to_tensor(patch), "name": self.lq_names[choice], "index": choice}

        item = self.skip_lq.draw(rng, load_lq)
        candidates = self.references.get(item.pop("index"))

        def load_ref(choice: int) -> Item:
            if candidates:  # the draw is over all references; map it onto the candidates
                choice = candidates[choice % len(candidates)]
            patch, _ = apply_training_crop(self.crop, generators, shrink(_load(self.refs[choice]), self.max_side))
            return {"ref": to_tensor(patch), "ref_name": self.ref_names[choice]}

        return {**item, **self.skip_ref.draw(rng, load_ref)}


class UnpairedImageDataset(Dataset):
    """Evaluation items, deterministic: phone photo ``i`` with its best reference.

    The reference is the first candidate in ``references``, else professional photo
    ``(seed + i) mod count``. Both are centre-cropped to ``crop`` when given.

    Args:
        lq: Phone photos (files or arrays), in a fixed order.
        lq_names: One unique name per phone photo.
        refs: Professional photos.
        ref_names: One name per professional photo.
        references: Phone photo index → candidate reference indices, best first.
        crop: Side of the centre crops, or ``None`` for whole images.
        max_side: Downscale each photo to this long side first (``None``: native).
        seed: Offset of the fallback reference choice.
        targets: Clean targets of the phone photos, when known (the demo), as ``hq``.
    """

    def __init__(
        self,
        lq: Sequence[ImageSource],
        lq_names: Sequence[str],
        refs: Sequence[ImageSource],
        ref_names: Sequence[str],
        references: dict[int, list[int]],
        crop: Optional[int] = None,
        max_side: Optional[int] = None,
        seed: int = 0,
        targets: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        self.lq, self.lq_names = list(lq), list(lq_names)
        self.refs, self.ref_names = list(refs), list(ref_names)
        self.references = references
        self.crop, self.max_side, self.seed = crop, max_side, seed
        self.targets = list(targets) if targets is not None else None
        self.cache = ItemCache()

    def __len__(self) -> int:
        return len(self.lq)

    def __getitem__(self, index: int) -> Item:
        cached = self.cache.get(index)
        if cached is not None:
            return cached
        candidates = self.references.get(index)
        choice = candidates[0] if candidates else (self.seed + index) % len(self.refs)

        def prepare(image: np.ndarray) -> np.ndarray:
            return center_crop(shrink(image, self.max_side), self.crop)

        item: Item = {
            "lq": to_tensor(prepare(_load(self.lq[index]))),
            "ref": to_tensor(prepare(_load(self.refs[choice]))),
            "name": self.lq_names[index],
            "ref_name": self.ref_names[choice],
        }
        if self.targets is not None:
            item["hq"] = to_tensor(prepare(self.targets[index]))
        return self.cache.put(index, item)


def _where(sources: Sequence[ImageSource], fallback: str) -> str:
    first = sources[0] if sources else None
    return str(first.parent) if isinstance(first, Path) else fallback
