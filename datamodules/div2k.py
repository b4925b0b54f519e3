"""DIV2K (and any extra clean photos): HQ only, the LQ side is synthesised by a PhoneDegradation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
from jsonargparse import lazy_instance
from torch.utils.data import DataLoader

from datamodules.datasets import (
    DegradedImageDataset,
    DegradedPatchDataset,
    check_loader_args,
    drop_unreadable,
    make_loader,
)
from datamodules.degradations import PhoneDegradation
from datamodules.io import find_images
from mobile2dslr.errors import DatasetLayoutError, UserError

DIV2K_LAYOUT = "expected <root>/DIV2K_train_HR/0001.png... (and optionally <root>/DIV2K_valid_HR/0801.png...)"


class DIV2KDataModule(pl.LightningDataModule):
    """Clean photos degraded on the fly into synthetic phone photos.

    Training takes a random ``patch_size`` crop (flipped/rotated at random) of a random
    image from ``<root>/DIV2K_train_HR`` and ``extra_hq_dirs``, then degrades the patch.
    Validation uses ``<root>/DIV2K_valid_HR`` when present, otherwise holds out the last
    ``val_count`` images (in natural order, DIV2K first, then the extra folders); each is
    centre-cropped to ``val_crop`` and degraded once with seed ``seed + index``, so
    every epoch sees the same LQ. Test and predict use the validation images. Names are
    file stems (``0801``); images of extra folders are named ``<folder>/<relative stem>``.

    Args:
        root: DIV2K folder holding ``DIV2K_train_HR`` (and optionally ``DIV2K_valid_HR``),
            or ``None`` to train on ``extra_hq_dirs`` only.
        extra_hq_dirs: More folders of clean images (any names, searched recursively),
            added to training.
        degradation: Makes LQ from HQ (default: ``PhoneDegradation()``, built lazily so
            that LightningCLI records its arguments in the saved config).
        patch_size: Side of the square training patches; smaller images are
            reflect-padded.
        batch_size: Training batch size (every batch is full).
        val_batch_size: Validation/test/predict batch size.
        val_crop: Side of the validation centre crop (DIV2K images are 2K), or ``None``
            for full images (then use ``val_batch_size=1``).
        val_count: Images held out for validation when there is no ``DIV2K_valid_HR``.
        seed: Base seed of the validation degradation.
        samples_per_epoch: Training patches per epoch.
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        extra_hq_dirs: list[str] = [],  # noqa: B006 (copied, never mutated)
        degradation: PhoneDegradation = lazy_instance(PhoneDegradation),
        patch_size: int = 100,
        batch_size: int = 50,
        val_batch_size: int = 1,
        val_crop: Optional[int] = 256,
        val_count: int = 10,
        seed: int = 0,
        samples_per_epoch: int = 10000,
        num_workers: int = 2,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        check_loader_args(patch_size, batch_size, samples_per_epoch, "DIV2KDataModule")
        if val_count < 1:
            raise UserError(f"DIV2KDataModule: val_count must be at least 1, got {val_count}")
        if root is None and not extra_hq_dirs:
            raise DatasetLayoutError(f"DIV2KDataModule: no data: set root ({DIV2K_LAYOUT}) or extra_hq_dirs")
        self.root = Path(root) if root is not None else None
        self.extra_hq_dirs = [Path(folder) for folder in extra_hq_dirs]
        self.degradation = degradation
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.val_crop = val_crop
        self.val_count = val_count
        self.seed = seed
        self.samples_per_epoch = samples_per_epoch
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_images: list[Path] = []
        self.train_names: list[str] = []
        self.val_images: list[Path] = []
        self.val_names: list[str] = []

    def setup(self, stage: Optional[str] = None) -> None:
        """Find the images of every split (once); raises :class:`DatasetLayoutError`."""
        if self.train_images:
            return
        train: list[tuple[Path, str]] = []
        val: list[tuple[Path, str]] = []
        if self.root is not None:
            if not (self.root / "DIV2K_train_HR").is_dir():
                raise DatasetLayoutError(f"DIV2K layout not found under {self.root}: {DIV2K_LAYOUT}")
            train += named_images(self.root / "DIV2K_train_HR", prefix=False)
            if (self.root / "DIV2K_valid_HR").is_dir():
                val = named_images(self.root / "DIV2K_valid_HR", prefix=False)
        for folder in self.extra_hq_dirs:
            train += named_images(folder, prefix=True)
        if not val:
            if len(train) < 2:
                raise DatasetLayoutError(f"{train[0][0]}: the only image cannot be split into training and validation")
            count = min(self.val_count, len(train) - 1)
            train, val = train[:-count], train[-count:]
        val = drop_unreadable(val, lambda item: (item[0],), "validation")
        self.train_images, self.train_names = [p for p, _ in train], [n for _, n in train]
        self.val_images, self.val_names = [p for p, _ in val], [n for _, n in val]

    def train_dataloader(self) -> DataLoader:
        """Random patches of random images, degraded on the fly."""
        dataset = DegradedPatchDataset(
            self.train_images, self.train_names, self.degradation, self.patch_size, self.samples_per_epoch
        )
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """The validation images, centre-cropped and degraded deterministically."""
        dataset = DegradedImageDataset(self.val_images, self.val_names, self.degradation, self.seed, self.val_crop)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader (items also carry ``hq``)."""
        return self.val_dataloader()


def named_images(folder: Path, prefix: bool) -> list[tuple[Path, str]]:
    """The images of a folder (recursive) with their names: relative stems, ``<folder>/`` first with ``prefix``."""
    paths = find_images(folder)
    if not paths:
        raise DatasetLayoutError(f"{folder}: no images found")
    names = [path.relative_to(folder).with_suffix("").as_posix() for path in paths]
    return [(path, f"{folder.name}/{name}" if prefix else name) for path, name in zip(paths, names)]
