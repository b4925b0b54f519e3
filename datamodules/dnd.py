"""DND (Darmstadt Noise Dataset) and other real noisy photos, without ground truth."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from datamodules.datasets import Item, SkipUnreadable, check_loader_args, drop_unreadable, hold_out, make_loader
from datamodules.dnd_format import (
    DND_LAYOUT,
    box_crops,
    check_boxes,
    dnd_image_size,
    find_dnd_images,
    read_dnd_boxes,
    read_dnd_image,
)
from datamodules.io import find_images, read_image
from datamodules.transforms import apply_training_crop, center_crop, item_generators, to_tensor, training_crop
from mobile2dslr.errors import DatasetLayoutError, UserError

__all__ = ["DNDDataModule", "DNDBoxDataset", "NoisyPatchDataset", "NoisyImageDataset"]

_PLAIN_LAYOUT = "or a folder of noisy photos (jpg/png/tiff/RAW, searched recursively)"


class NoisyPatchDataset(Dataset):
    """Training patches: a random crop (and flip/rot90) of a random noisy image.

    DND files are read by region (only the patch's pixels); other files whole.

    Args:
        sources: Image files: DND ``.mat`` files when ``sizes`` is given, else any
            format :func:`~datamodules.io.read_image` reads.
        names: One name per file.
        patch_size: Side of the square patches; smaller images are reflect-padded.
        samples_per_epoch: Items per epoch (``__len__``).
        sizes: (H, W) of each DND file; ``None`` for ordinary image files.
    """

    def __init__(
        self,
        sources: Sequence[Path],
        names: Sequence[str],
        patch_size: int,
        samples_per_epoch: int,
        sizes: Optional[Sequence[tuple[int, int]]] = None,
    ) -> None:
        self.sources, self.names = list(sources), list(names)
        self.sizes = list(sizes) if sizes is not None else None
        self.patch_size = patch_size
        self.samples_per_epoch = samples_per_epoch
        self.crop = training_crop(patch_size, paired=False)
        self.skip = SkipUnreadable(len(self.sources), str(self.sources[0].parent) if self.sources else "")

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _read(self, choice: int, rng: np.random.Generator) -> np.ndarray:
        if self.sizes is None:
            return read_image(self.sources[choice])
        height, width = self.sizes[choice]
        y0 = int(rng.integers(max(height - self.patch_size, 0) + 1))
        x0 = int(rng.integers(max(width - self.patch_size, 0) + 1))
        return read_dnd_image(self.sources[choice], (y0, x0, y0 + self.patch_size, x0 + self.patch_size))

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()

        def load(choice: int) -> Item:
            patch, _ = apply_training_crop(self.crop, generators, self._read(choice, generators[0]))
            return {"lq": to_tensor(patch), "name": self.names[choice]}

        return self.skip.draw(generators[0], load)


class DNDBoxDataset(Dataset):
    """DND's benchmark: every box of every image, in image order, named ``NNNN_BB``.

    Each image file is read once per worker: the boxes of the last image read are kept,
    and a worker's indices only grow (no shuffling), so it never returns to an image.

    Args:
        images: ``(file, image_number, boxes)`` per image, ``boxes`` the (N, 4)
            ``[y0, x0, y1, x1)`` arrays of :func:`~datamodules.dnd_format.read_dnd_boxes`.
    """

    def __init__(self, images: Sequence[tuple[Path, int, np.ndarray]]) -> None:
        self.images = list(images)
        #: ``(image_number, box_number)`` of each item, both 1-based.
        self.keys = [(number, box + 1) for _, number, boxes in self.images for box in range(len(boxes))]
        self._index = [(i, box) for i, (_, _, boxes) in enumerate(self.images) for box in range(len(boxes))]
        self._cached: tuple[int, list[np.ndarray]] = (-1, [])

    def __len__(self) -> int:
        return len(self._index)

    def crop(self, index: int) -> np.ndarray:
        """The noisy crop of item ``index`` as (h, w, 3) float32 in [0, 1]."""
        image_index, box = self._index[index]
        if self._cached[0] != image_index:
            path, _, boxes = self.images[image_index]
            self._cached = (image_index, box_crops(read_dnd_image(path), boxes, str(path)))
        return self._cached[1][box]

    def __getitem__(self, index: int) -> Item:
        number, box = self.keys[index]
        return {"lq": to_tensor(self.crop(index)), "name": f"{number:04d}_{box:02d}"}


class NoisyImageDataset(Dataset):
    """Evaluation photos: whole, or a deterministic centre crop.

    Args:
        items: ``(name, file)`` pairs in a fixed order.
        crop: Side of the centre crop, or ``None`` for whole images.
    """

    def __init__(self, items: Sequence[tuple[str, Path]], crop: Optional[int] = None) -> None:
        self.items = list(items)
        self.crop = crop

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Item:
        name, path = self.items[index]
        return {"lq": to_tensor(center_crop(read_image(path), self.crop)), "name": name}


class DNDDataModule(pl.LightningDataModule):
    """Real noisy photos (the noise domain of MDIE): DND, or any folder of noisy photos.

    There is no ground truth (DND's is not public): items are ``{"lq", "name"}``.
    Layouts, the first one present:

    - official DND: ``<root>/images_srgb/0001.mat … 0050.mat`` (MATLAB v7.3,
      ``InoisySRGB``) and ``<root>/info.mat`` (``boundingboxes``). Validation, test and
      predict are the benchmark: the 20 boxes of each image, named ``0001_01`` …
      ``0050_20``. DND has no split: the same 50 images are also the training images.
      ``pattern`` and ``val_fraction`` do not apply.
    - a plain folder of noisy photos, searched recursively (``pattern`` selects file
      names, e.g. ``"*_real.*"`` for PolyU's ``CroppedImages``): a deterministic
      ``val_fraction`` of them, evenly spaced in name order, is held out for
      validation, test and predict (whole, or centre-cropped to ``val_crop``).

    Training items are random ``patch_size`` crops, randomly flipped/rotated, of random
    images; an unreadable training file is reported once and not drawn again.

    Args:
        root: The dataset folder.
        pattern: Plain folders: keep only files whose name matches this glob
            (case-insensitive); ``None`` keeps every image.
        patch_size: Side of the square training patches; smaller images are reflect-padded.
        batch_size: Training batch size (every batch is full).
        samples_per_epoch: Training patches per epoch.
        val_fraction: Plain folders: share of the photos held out (at least one).
        val_crop: Plain folders: side of the validation centre crops; ``None`` keeps
            photos whole. DND boxes are always whole.
        val_batch_size: Validation/test/predict batch size (photos of different sizes need 1).
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        root: str,
        pattern: Optional[str] = None,
        patch_size: int = 128,
        batch_size: int = 8,
        samples_per_epoch: int = 800,
        val_fraction: float = 0.1,
        val_crop: Optional[int] = None,
        val_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        check_loader_args(patch_size, batch_size, samples_per_epoch, "DNDDataModule")
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"DNDDataModule: val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root)
        self.pattern = pattern
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_fraction = val_fraction
        self.val_crop = val_crop
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.official = False
        self.train_files: list[Path] = []
        self.train_names: list[str] = []
        self.train_sizes: Optional[list[tuple[int, int]]] = None
        self.benchmark: list[tuple[Path, int, np.ndarray]] = []
        self.val_items: list[tuple[str, Path]] = []

    def setup(self, stage: Optional[str] = None) -> None:
        """Find the images (once); raises :class:`DatasetLayoutError` or :class:`ImageReadError`."""
        if self.train_files:
            return
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"{self.root}: dataset folder not found; DNDDataModule expects {DND_LAYOUT}, {_PLAIN_LAYOUT}"
            )
        images = find_dnd_images(self.root)
        if images:
            self._setup_official(images)
        else:
            self._setup_plain()

    def _setup_official(self, images: list[Path]) -> None:
        info = self.root / "info.mat"
        if not info.is_file():
            raise DatasetLayoutError(f"{info}: not found; the official DND layout is {DND_LAYOUT}")
        boxes = read_dnd_boxes(info)
        sizes = []
        for path in images:
            number = int(path.stem)
            if number > len(boxes):
                raise DatasetLayoutError(f"{info}: holds boxes for {len(boxes)} images, but {path.name} is image {number}")
            sizes.append(dnd_image_size(path))  # a corrupt file fails here, in one line, before training
            check_boxes(boxes[number - 1], sizes[-1], str(path))
            self.benchmark.append((path, number, boxes[number - 1]))
        self.official = True
        self.train_files, self.train_names, self.train_sizes = images, [p.stem for p in images], sizes

    def _setup_plain(self) -> None:
        pattern = self.pattern.lower() if self.pattern else None
        files = [p for p in find_images(self.root) if pattern is None or fnmatchcase(p.name.lower(), pattern)]
        if not files:
            which = f"photos matching {self.pattern!r}" if self.pattern else "photos"
            raise DatasetLayoutError(
                f"{self.root}: neither DND files nor noisy {which} found; DNDDataModule expects {DND_LAYOUT}, {_PLAIN_LAYOUT}"
            )
        items = [(path.relative_to(self.root).with_suffix("").as_posix(), path) for path in files]
        train, val = hold_out(items, self.val_fraction, self.root)
        self.val_items = drop_unreadable(val, lambda item: [item[1]], "validation")
        self.train_names, self.train_files = [name for name, _ in train], [path for _, path in train]

    def train_dataloader(self) -> DataLoader:
        """Random patches of random training images, flipped/rotated at random."""
        dataset = NoisyPatchDataset(self.train_files, self.train_names, self.patch_size, self.samples_per_epoch, self.train_sizes)
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """DND: the benchmark boxes; plain folders: the held-out photos."""
        dataset = DNDBoxDataset(self.benchmark) if self.official else NoisyImageDataset(self.val_items, self.val_crop)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()
