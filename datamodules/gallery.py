"""A gallery of professional photos (and optional query photos) for the reference recommender.

Items are dicts ``{"image": (3, S, S) float32 in [0, 1], "group": int, "index": int,
"self_index": int, "name": str}``: ``group`` is the item's labelled group (items of one
group are positives for each other; -1 when unknown), ``index`` its position in its
loader, ``self_index`` its position in the split's gallery when the query is a gallery
item itself (leave-one-out), else -1.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.datasets import hold_out
from datamodules.demo import DEMO_SCENES, load_scene
from datamodules.io import find_images, read_image
from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError

log = logging.getLogger(__name__)

__all__ = ["GalleryDataModule", "GalleryItems", "square_crops", "read_labels"]


def square_crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator,
                 scale: tuple[float, float] = (0.5, 0.9)) -> list[np.ndarray]:
    """The largest centre square, then ``count - 1`` random squares, each resized to ``size``.

    Random squares have a side of ``scale`` × the short side (uniform). Outputs are uint8
    (H, W, 3): a gallery of thousands of crops stays in memory.
    """
    height, width = image.shape[:2]
    short = min(height, width)
    boxes = [((height - short) // 2, (width - short) // 2, short)]
    for _ in range(count - 1):
        side = max(1, int(short * rng.uniform(*scale)))
        boxes.append((int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side))
    crops = []
    for top, left, side in boxes:
        crop = image[top : top + side, left : left + side]
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (size, size), interpolation=interpolation)
        crops.append(np.clip(crop * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return crops


def read_labels(path: Path, folders: dict[str, list[Path]]) -> dict[Path, str]:
    """Read a labels CSV (``image,group``): image file → group name.

    ``image`` is a path relative to one of ``folders`` (name → root and its images, e.g.
    the gallery and the queries), or a file name when that name is unique there.

    Raises:
        DatasetLayoutError: unreadable file, missing columns, empty cells, or an image
            that is in none of the folders (one line naming the CSV and the row).
    """
    keys: dict[str, Path] = {}
    names: dict[str, list[Path]] = {}
    for root, images in folders.items():
        for image in images:
            keys.setdefault(image.relative_to(root).as_posix(), image)
            names.setdefault(image.name, []).append(image)
    groups: dict[Path, str] = {}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"image", "group"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetLayoutError(f"{path}: labels CSV lacks column(s) {sorted(missing)}; expected a header image,group")
            for row_number, row in enumerate(reader, start=2):
                image, group = (row.get("image") or "").strip(), (row.get("group") or "").strip()
                if not image or not group:
                    raise DatasetLayoutError(f"{path}: row {row_number}: expected image,group, got {row}")
                file = keys.get(Path(image).as_posix())
                if file is None and len(names.get(image, [])) == 1:
                    file = names[image][0]
                if file is None:
                    where = " or ".join(str(root) for root in folders)
                    why = "is ambiguous (several files have that name)" if len(names.get(image, [])) > 1 else "is not an image"
                    raise DatasetLayoutError(f"{path}: row {row_number}: {image!r} {why} in {where}")
                groups[file] = group
    except OSError as err:
        raise DatasetLayoutError(f"{path}: cannot read labels CSV ({err.strerror or err})") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetLayoutError(f"{path}: not a CSV file ({err})") from None
    return groups


class GalleryItems(Dataset):
    """Crops in memory (uint8) with their group, served as float tensors."""

    def __init__(self, crops: list[np.ndarray], groups: list[int], names: list[str], self_index: Optional[list[int]] = None):
        self.crops, self.groups, self.names = crops, groups, names
        self.self_index = self_index if self_index is not None else [-1] * len(crops)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict:
        image = torch.from_numpy(np.ascontiguousarray(self.crops[index].transpose(2, 0, 1))).float() / 255.0
        return {"image": image, "group": self.groups[index], "index": index,
                "self_index": self.self_index[index], "name": self.names[index]}


class GalleryDataModule(pl.LightningDataModule):
    """Professional photos (the gallery) and the queries the recommender learns to serve.

    Every photo is decoded once in ``setup`` and cut into ``crops_per_image`` squares of
    ``image_size`` px (the first the largest centre square, the others random). Groups
    come from the labels CSV; without one they are unknown (-1) and the recommender
    mines positives by semantic similarity. Validation holds out whole groups (or,
    without labels, whole photos: ranking on photos the head never saw) or, with
    ``val_split: crops``, some crops of every photo (new views of a known gallery, the
    recommender's use: its gallery is fixed and it learns that gallery). Validation
    queries are ranked against the validation gallery only. Unreadable photos are
    reported (one line each) and skipped.

    With no ``gallery`` the embedded demo photos are used (:data:`DEMO_SCENES`), each
    scene one group: every command runs offline.

    Args:
        gallery: folder of professional photos (searched recursively), or None for the demo.
        queries: folder of query photos (e.g. phone photos); default: the gallery itself,
            each gallery crop a query ranked against the others (leave-one-out).
        labels: CSV with header ``image,group``; ``image`` relative to the gallery or
            queries folder, or a unique file name. Photos missing from it form groups of
            their own (negatives for everyone).
        image_size: side of the square crops the descriptors are computed on.
        crops_per_image: crops per photo (default: 1 for a folder, 8 for the demo).
        crop_scale: side range of the random crops, as fractions of the short side.
        val_fraction: share of groups (photos without labels; crops of each photo with
            ``val_split: crops``) held out for validation.
        val_split: ``groups`` (hold out whole groups) or ``crops`` (hold out crops of every
            photo; needs ``crops_per_image`` >= 2).
        batch_size: queries per training batch.
        num_workers: DataLoader worker processes.
        seed: seed of the random crops.
    """

    def __init__(
        self,
        gallery: Optional[str] = None,
        queries: Optional[str] = None,
        labels: Optional[str] = None,
        image_size: int = 224,
        crops_per_image: Optional[int] = None,
        crop_scale: tuple[float, float] = (0.5, 0.9),
        val_fraction: float = 0.25,
        val_split: Literal["groups", "crops"] = "groups",
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if image_size < 32 or batch_size < 1 or (crops_per_image is not None and crops_per_image < 1):
            raise UserError(f"GalleryDataModule: image_size must be >= 32 (VGG-16 pools 4 times) and batch_size, "
                            f"crops_per_image >= 1; got {image_size}, {batch_size}, {crops_per_image}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1 or not 0 < val_fraction < 1:
            raise UserError(f"GalleryDataModule: need 0 < crop_scale[0] <= crop_scale[1] <= 1 and 0 < val_fraction < 1, "
                            f"got {crop_scale} and {val_fraction}")
        if gallery is None and (queries is not None or labels is not None):
            raise UserError("GalleryDataModule: queries and labels need a gallery folder")
        self.gallery, self.queries, self.labels = gallery, queries, labels
        self.image_size, self.crop_scale, self.val_fraction = image_size, crop_scale, val_fraction
        self.crops_per_image = crops_per_image or (1 if gallery else 8)
        if val_split not in ("groups", "crops") or (val_split == "crops" and self.crops_per_image < 2):
            raise UserError(f"GalleryDataModule: val_split must be 'groups' or 'crops' (with crops_per_image >= 2), "
                            f"got {val_split!r} with {self.crops_per_image} crop(s) per image")
        self.val_split = val_split
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.splits: dict[str, dict[str, GalleryItems]] = {}

    def _photos(self) -> tuple[list[tuple[str, object, Optional[str]]], list[tuple[str, object, Optional[str]]]]:
        """(name, image file or array, group name) of the gallery and of the queries."""
        if self.gallery is None:
            demo = [(name, image, scene) for scene in DEMO_SCENES for name, image in load_scene(scene)]
            return demo, []
        roots = {self.gallery: find_images(self.gallery)}
        if self.queries is not None:
            roots[self.queries] = find_images(self.queries)
        for root, images in roots.items():
            if not images:
                raise DatasetLayoutError(f"{root}: no images found")
        groups = read_labels(Path(self.labels), roots) if self.labels else {}
        if self.labels:
            unlabelled = sum(1 for images in roots.values() for image in images if image not in groups)
            if unlabelled:
                log.warning("%s: %d photo(s) have no group; each forms its own group", self.labels, unlabelled)

        def entries(root: str) -> list:
            return [(image.relative_to(root).as_posix(), image, groups.get(image, f"\0{image}" if self.labels else None))
                    for image in roots[root]]

        return entries(self.gallery), entries(self.queries) if self.queries is not None else []

    def setup(self, stage: Optional[str] = None) -> None:
        """Decode and crop every photo once; split groups (or photos) into train and val."""
        if self.splits:
            return
        gallery, queries = self._photos()
        where = Path(str(self.gallery or "demo"))
        units = sorted({group if group is not None else name for name, _, group in gallery + queries})
        if len(units) < 2 and self.val_split == "groups":
            raise DatasetLayoutError(f"{where}: needs photos of at least 2 groups to split training and validation")
        train_units = set(hold_out(units, self.val_fraction, where)[0]) if self.val_split == "groups" else set(units)
        train_crops = set(hold_out(list(range(self.crops_per_image)), self.val_fraction, where)[0])
        group_ids = {group: i for i, group in enumerate(sorted({g for _, _, g in gallery + queries if g is not None}))}
        rng = np.random.default_rng(self.seed)
        crops: dict[str, dict[str, tuple[list, list, list]]] = {s: {"gallery": ([], [], []), "queries": ([], [], [])} for s in ("train", "val")}
        for role, photos in (("gallery", gallery), ("queries", queries)):
            for name, source, group in photos:
                try:
                    image = read_image(source) if isinstance(source, Path) else source
                except ImageReadError as err:
                    log.warning("skipping unreadable %s photo: %s", role, err)
                    continue
                unit_split = "train" if (group if group is not None else name) in train_units else "val"
                pieces = square_crops(image, self.crops_per_image, self.image_size, rng, self.crop_scale)
                for i, piece in enumerate(pieces):
                    split = unit_split if self.val_split == "groups" or i in train_crops else "val"
                    images, groups, names = crops[split][role]
                    images.append(piece)
                    groups.append(group_ids[group] if group is not None else -1)
                    names.append(f"{name}#{i}" if len(pieces) > 1 else name)
        for split, roles in crops.items():
            if not roles["gallery"][0]:
                raise DatasetLayoutError(f"{self.gallery or 'demo'}: no readable gallery photo left for {split}")
            bank = GalleryItems(*roles["gallery"])
            queries_set = GalleryItems(*roles["queries"]) if self.queries is not None else GalleryItems(
                *roles["gallery"], self_index=list(range(len(bank))))
            self.splits[split] = {"gallery": bank, "queries": queries_set}

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def gallery_dataloader(self, split: str = "train") -> DataLoader:
        """The gallery crops of ``split`` (``train`` or ``val``), in order: the recommender's bank."""
        return self._loader(self.splits[split]["gallery"])

    def train_dataloader(self) -> DataLoader:
        """The training queries, shuffled."""
        return self._loader(self.splits["train"]["queries"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out queries, ranked against the held-out gallery."""
        return self._loader(self.splits["val"]["queries"])
