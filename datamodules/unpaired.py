"""UPR: unpaired phone photos and professional photos (MPSE phase 2's data)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
from jsonargparse import lazy_instance
from torch.utils.data import DataLoader

from datamodules.datasets import check_loader_args, drop_unreadable, hold_out, make_loader
from datamodules.degradations import PhoneDegradation
from datamodules.demo import DEMO_SCENES, load_scene
from datamodules.io import find_images
from datamodules.unpaired_datasets import UnpairedImageDataset, UnpairedPatchDataset, read_references
from mobile2dslr.errors import DatasetLayoutError, UserError

log = logging.getLogger(__name__)


class UnpairedDataModule(pl.LightningDataModule):
    """Phone photos (``lq/``) and professional photos (``hq/``) of any sizes, never paired.

    Every training item is a random crop of a phone photo plus a random crop of a
    professional *reference*: one of the photo's ``top_k`` recommendations when a
    ``references`` CSV is given (written by ``mobile2dslr recommend --csv``), else any
    professional photo. A deterministic ``val_fraction`` of the phone photos is held out
    for validation (each with its best reference, or a fixed one).

    With no ``root`` it runs on the embedded demo data: the phone photos are the demo
    scenes degraded once (fixed seeds), the professional photos the clean scenes; the
    ``val_scenes`` are held out (their clean versions are the validation targets ``hq``).

    Args:
        root: Dataset folder holding ``lq_dir`` and ``hq_dir``; ``None`` for the demo data.
        lq_dir: The phone-photo folder under ``root`` (searched recursively).
        hq_dir: The professional-photo folder under ``root`` (searched recursively).
        references: ``recommend --csv`` output (``image,reference,rank[,distance]``).
        top_k: How many of each photo's best references a training item draws from.
        patch_size: Side of the square training crops (phone and reference).
        max_side: Downscale photos to this long side before cropping, so crops see
            whole objects rather than pixels of a 12 MP photo (``None``: native size).
        batch_size: Training batch size (every batch is full).
        samples_per_epoch: Training items per epoch.
        val_fraction: Share of the phone photos held out for validation.
        val_crop: Side of the validation centre crops (``None``: whole images).
        val_batch_size: Validation/test batch size (images of different sizes need 1).
        val_scenes: Demo data only: the held-out scenes.
        degradation: Demo data only: makes the phone photos from the clean scenes.
        num_workers: DataLoader worker processes.
        seed: Demo degradation seed and validation reference offset.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        lq_dir: str = "lq",
        hq_dir: str = "hq",
        references: Optional[str] = None,
        top_k: int = 5,
        patch_size: int = 128,
        max_side: Optional[int] = 1024,
        batch_size: int = 8,
        samples_per_epoch: int = 1000,
        val_fraction: float = 0.1,
        val_crop: Optional[int] = 256,
        val_batch_size: int = 1,
        val_scenes: list[str] = ["chelsea", "coffee"],  # noqa: B006 (copied, never mutated)
        degradation: PhoneDegradation = lazy_instance(PhoneDegradation),
        num_workers: int = 2,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        check_loader_args(patch_size, batch_size, samples_per_epoch, "UnpairedDataModule")
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"UnpairedDataModule: val_fraction must be in (0, 1), got {val_fraction}")
        if top_k < 1:
            raise UserError(f"UnpairedDataModule: top_k must be >= 1, got {top_k}")
        unknown = [scene for scene in val_scenes if scene not in DEMO_SCENES]
        if unknown or not val_scenes or len(val_scenes) == len(DEMO_SCENES):
            raise UserError(f"UnpairedDataModule: val_scenes {list(val_scenes)} must be a proper subset of {', '.join(DEMO_SCENES)}")
        self.root = Path(root) if root else None
        self.lq_dir, self.hq_dir = lq_dir, hq_dir
        self.references = Path(references) if references else None
        self.top_k = top_k
        self.patch_size = patch_size
        self.max_side = max_side
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_fraction = val_fraction
        self.val_crop = val_crop
        self.val_batch_size = val_batch_size
        self.val_scenes = list(val_scenes)
        self.degradation = degradation
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_lq: list = []
        self.val_lq: list = []
        self.refs: list = []
        self.val_targets: Optional[list[np.ndarray]] = None

    def setup(self, stage: Optional[str] = None) -> None:
        """Find (or build, for the demo) the photos of every split, once."""
        if self.refs:
            return
        if self.root is None:
            self._setup_demo()
        else:
            self._setup_folders()
        lq_names = [name for name, _ in self.train_lq] + [name for name, _ in self.val_lq]
        ref_names = [name for name, _ in self.refs]
        if self.references is None:
            log.info("UnpairedDataModule: no references CSV; each phone crop is paired with a random professional photo")
            self.pairing: dict[int, list[int]] = {}
        else:
            self.pairing = read_references(self.references, lq_names, ref_names, self.top_k)
            log.info("UnpairedDataModule: %d of %d phone photos have recommended references", len(self.pairing), len(lq_names))

    def _setup_demo(self) -> None:
        scenes = [image for scene in DEMO_SCENES for image in load_scene(scene)]
        held = {name for scene in self.val_scenes for name, _ in load_scene(scene)}
        degraded = [(name, self.degradation.degrade(image, seed=self.seed + i)) for i, (name, image) in enumerate(scenes)]
        self.train_lq = [(name, image) for name, image in degraded if name not in held]
        self.val_lq = [(name, image) for name, image in degraded if name in held]
        self.val_targets = [image for name, image in scenes if name in held]
        # The professional side: the clean scenes that are not held out.
        self.refs = [(name, image) for name, image in scenes if name not in held]

    def _setup_folders(self) -> None:
        lq_root, hq_root = self.root / self.lq_dir, self.root / self.hq_dir
        for folder, what in ((lq_root, "phone"), (hq_root, "professional")):
            if not folder.is_dir():
                raise DatasetLayoutError(
                    f"{folder}: {what} photo folder not found; UnpairedDataModule expects "
                    f"{self.root}/{self.lq_dir}/ (phone) and {self.root}/{self.hq_dir}/ (professional)"
                )
        lq = [(path.relative_to(lq_root).as_posix(), path) for path in find_images(lq_root)]
        refs = [(path.relative_to(hq_root).as_posix(), path) for path in find_images(hq_root)]
        for found, folder in ((lq, lq_root), (refs, hq_root)):
            if not found:
                raise DatasetLayoutError(f"{folder}: no images found (jpg/png/tiff/RAW)")
        self.train_lq, val = hold_out(lq, self.val_fraction, lq_root)
        self.val_lq = drop_unreadable(val, lambda item: [item[1]], "validation")
        self.refs = refs

    def train_dataloader(self) -> DataLoader:
        """Random phone crops, each with a crop of one of its references."""
        names, images = zip(*self.train_lq)
        ref_names, refs = zip(*self.refs)
        dataset = UnpairedPatchDataset(
            images, names, refs, ref_names, self.pairing, self.patch_size, self.samples_per_epoch, self.max_side
        )
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out phone photos, each with its best (or a fixed) reference."""
        names, images = zip(*self.val_lq)
        ref_names, refs = zip(*self.refs)
        offset = len(self.train_lq)  # pairing indices count the training photos first
        pairing = {i - offset: refs_ for i, refs_ in self.pairing.items() if i >= offset}
        dataset = UnpairedImageDataset(
            images, names, refs, ref_names, pairing, self.val_crop, self.max_side, self.seed, self.val_targets
        )
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()
