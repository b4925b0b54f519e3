"""MDIE's joint StarGAN data: three datasets, each labelled along one attribute only.

Label convention (StarGAN's mask vector; the thesis's c̃ = [c_color, c_texture, c_noise, m]):
a training image from dataset ``d`` (0 colour, 1 texture, 2 noise; see :data:`DOMAINS`) with
quality ``q`` (0 low, 1 high) has

- ``mask = one_hot(d)``: only dataset ``d``'s attribute is known;
- ``label[d] = q`` and ``label[j] = 0`` for ``j != d``: the other attributes are unknown,
  0 is a placeholder that the mask hides from the classification loss.

The generator's target label is then ``torch.cat([label, mask])`` (6 values). Datasets:

- colour: clean photos = high; the same photos through a colour/exposure-only
  :class:`PhoneDegradation` = low;
- texture: phone photos (DPED's phone patches) = low, DSLR photos = high, two unpaired pools;
- noise: noisy photos (DND, PolyU ``*_real``, ...) = low, any clean photos = high.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from jsonargparse import lazy_instance
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from datamodules.datasets import (
    DegradedImageDataset,
    Item,
    PairedImageDataset,
    SkipUnreadable,
    check_loader_args,
    drop_unreadable,
    make_loader,
)
from datamodules.degradations import PhoneDegradation
from datamodules.demo import DEMO_SCENES, load_scene
from datamodules.domain_pools import DomainPool, clean_images, noisy_images, texture_images
from datamodules.paired import Layout, PairedDataModule
from datamodules.transforms import apply_training_crop, item_generators, to_tensor, training_crop
from mobile2dslr.errors import UserError

#: The three datasets, in label order.
DOMAINS: tuple[str, ...] = ("color", "texture", "noise")
#: Quality values, in label order (0 low, 1 high).
QUALITIES: tuple[str, ...] = ("low", "high")
_SOURCES = "color_root/color_hq_dirs (colour), texture_root (texture), noisy_root with clean_dirs (noise)"


def label_vector(dataset: int, quality: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The label and mask of an image of ``dataset`` with ``quality`` (the module's convention).

    Args:
        dataset: Index into :data:`DOMAINS`.
        quality: 0 (low) or 1 (high).

    Returns:
        ``label`` and ``mask``, both (3,) float32.

    Example:
        >>> label_vector(1, 1)
        (tensor([0., 1., 0.]), tensor([0., 1., 0.]))
    """
    if dataset not in range(len(DOMAINS)) or quality not in (0, 1):
        raise ValueError(f"label_vector: dataset must be 0-2 and quality 0 or 1, got {dataset} and {quality}")
    mask = torch.zeros(len(DOMAINS))
    mask[dataset] = 1.0
    return mask * quality, mask


class MultiDomainPatchDataset(Dataset):
    """Training items: a dataset (by weight), a quality (50/50), a random image of that pool, a patch.

    Items are ``{"image": (3, P, P), "label": (3,), "mask": (3,), "dataset": int64, "name": str}``;
    names are ``<domain>/<low|high>/<image name>``.

    Args:
        pools: The pool of every (dataset, quality) that can be drawn (both qualities of each).
        weights: Relative weight of each of the three datasets (those without pools are ignored).
        patch_size: Side of the square patches; smaller images are reflect-padded.
        samples_per_epoch: Items per epoch (``__len__``).
    """

    def __init__(
        self, pools: dict[tuple[int, int], DomainPool], weights: Sequence[float], patch_size: int, samples_per_epoch: int
    ) -> None:
        self.pools = pools
        self.datasets = sorted({dataset for dataset, _ in pools})
        chosen = np.array([weights[dataset] for dataset in self.datasets], dtype=np.float64)
        self.probabilities = chosen / chosen.sum()
        self.samples_per_epoch = samples_per_epoch
        self.crop = training_crop(patch_size, paired=False)
        self.skips = {key: SkipUnreadable(len(pool.sources), pool.where()) for key, pool in pools.items()}

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()
        rng = generators[0]
        dataset = self.datasets[int(rng.choice(len(self.datasets), p=self.probabilities))]
        quality = int(rng.integers(2))
        pool = self.pools[(dataset, quality)]
        label, mask = label_vector(dataset, quality)

        def load(choice: int) -> Item:
            patch, _ = apply_training_crop(self.crop, generators, pool.load(choice))
            if pool.degradation is not None:  # per item, so the same photo gives new low patches
                patch = pool.degradation.degrade(patch, seed=int(rng.integers(2**31 - 1)))
            name = f"{DOMAINS[dataset]}/{QUALITIES[quality]}/{pool.names[choice]}"
            return {"image": to_tensor(patch), "label": label, "mask": mask, "dataset": torch.tensor(dataset), "name": name}

        return self.skips[(dataset, quality)].draw(rng, load)


class MultiDomainDataModule(pl.LightningDataModule):
    """Colour, texture and noise datasets with StarGAN's mask-vector labels (see the module docstring).

    Training draws a dataset among those with a source (``domain_weights``), then a quality
    (equal odds), then a random image of that pool, then a random crop and flip/rot90;
    synthetic low-quality patches are degraded per item. A dataset without a source is
    never drawn (its mask slot is 0 in every item).

    Demo (``demo``): the training demo scenes (``DEMO_SCENES`` minus ``val_scenes``)
    stand in for a dataset's missing source: high = the clean photo; colour low =
    ``color_degradation``, texture low = ``demo_texture_degradation``, noise low =
    ``demo_noise_degradation``. ``demo=None`` (default) uses the demo for every dataset
    when no source at all is given, else never; ``True`` uses it for every dataset
    without a source; ``False`` never.

    Validation, test and predict are paired (items ``{"lq", "hq", "name"}``): ``val_root``
    (any :class:`PairedDataModule` layout, all its pairs; DPED: its test patches), else
    the held-out demo scenes degraded by ``val_degradation`` with seed ``seed + index``.

    Args:
        color_root: DIV2K folder (``DIV2K_train_HR`` is read) of clean photos, or ``None``.
        color_hq_dirs: More folders of clean photos for the colour dataset.
        color_degradation: Makes colour-low from clean photos (exposure and colour cast only).
        texture_root: Paired phone/DSLR dataset (DPED: its ``training_data``), or ``None``.
        texture_layout: Its layout, as :class:`PairedDataModule`'s ``layout``.
        texture_phone: DPED phone folder name (also used for a DPED ``val_root``).
        texture_lq_dir: Folders layout: the phone folder under ``texture_root``.
        texture_hq_dir: Folders layout: the DSLR folder under ``texture_root``.
        noisy_root: Noisy photos (noise-low): DND's official layout or a plain folder.
        noisy_pattern: Glob on file names in ``noisy_root`` (PolyU: ``"*_real.*"``).
        clean_dirs: Folders of clean photos (noise-high); required with ``noisy_root``.
        clean_pattern: Glob on file names in ``clean_dirs`` (PolyU: ``"*_mean.*"``).
        domain_weights: Relative odds of drawing colour, texture, noise.
        demo: Use the demo photos for datasets without a source: ``None`` only when
            nothing is given, ``True`` always, ``False`` never.
        demo_texture_degradation: Makes demo texture-low (blur, resampling, JPEG only;
            blur and JPEG always, so a low patch is never clean).
        demo_noise_degradation: Makes demo noise-low (sensor noise only, always applied).
        val_scenes: Demo scenes held out for validation (never trained on).
        val_degradation: Makes the demo validation LQ (the full phone degradation).
        val_root: Paired validation set, or ``None`` for the demo scenes.
        val_layout: Its layout, as :class:`PairedDataModule`'s ``layout``.
        val_lq_dir: Folders layout: the LQ folder under ``val_root``.
        val_hq_dir: Folders layout: the HQ folder under ``val_root``.
        val_lq_suffix: Suffix layout: the LQ file-name suffix.
        val_hq_suffix: Suffix layout: the HQ file-name suffix.
        patch_size: Side of the square training patches.
        batch_size: Training batch size (every batch is full).
        samples_per_epoch: Training patches per epoch.
        val_crop: Side of the validation centre crops, or ``None`` for full images
            (MDIE's nets pad to multiples of 32 themselves).
        val_batch_size: Validation/test/predict batch size.
        num_workers: DataLoader worker processes.
        seed: Base seed of the demo validation degradation.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        color_root: Optional[str] = None,
        color_hq_dirs: list[str] = [],  # noqa: B006 (copied, never mutated)
        color_degradation: PhoneDegradation = lazy_instance(PhoneDegradation, enabled=("exposure", "color_cast")),
        texture_root: Optional[str] = None,
        texture_layout: Layout = "auto",
        texture_phone: str = "iphone",
        texture_lq_dir: str = "lq",
        texture_hq_dir: str = "hq",
        noisy_root: Optional[str] = None,
        noisy_pattern: Optional[str] = None,
        clean_dirs: list[str] = [],  # noqa: B006 (copied, never mutated)
        clean_pattern: Optional[str] = None,
        domain_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        demo: Optional[bool] = None,
        demo_texture_degradation: PhoneDegradation = lazy_instance(
            PhoneDegradation, enabled=("blur", "resample", "jpeg"), blur_p=1.0, jpeg_p=1.0
        ),
        demo_noise_degradation: PhoneDegradation = lazy_instance(PhoneDegradation, enabled=("noise",), noise_p=1.0),
        val_scenes: list[str] = ["chelsea", "coffee"],  # noqa: B006 (copied, never mutated)
        val_degradation: PhoneDegradation = lazy_instance(PhoneDegradation),
        val_root: Optional[str] = None,
        val_layout: Layout = "auto",
        val_lq_dir: str = "lq",
        val_hq_dir: str = "hq",
        val_lq_suffix: str = "_real",
        val_hq_suffix: str = "_mean",
        patch_size: int = 128,
        batch_size: int = 16,
        samples_per_epoch: int = 1600,
        val_crop: Optional[int] = 256,
        val_batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        owner = "MultiDomainDataModule"
        check_loader_args(patch_size, batch_size, samples_per_epoch, owner)
        if len(domain_weights) != len(DOMAINS) or min(domain_weights) < 0:
            raise UserError(f"{owner}: domain_weights must be 3 non-negative numbers (colour, texture, noise), got {domain_weights}")
        if (noisy_root is None) != (not clean_dirs):
            raise UserError(f"{owner}: the noise dataset needs both noisy_root (noisy photos) and clean_dirs (clean photos)")
        unknown = [scene for scene in val_scenes if scene not in DEMO_SCENES]
        self.train_scenes = [scene for scene in DEMO_SCENES if scene not in val_scenes]
        if unknown or not val_scenes or not self.train_scenes:
            raise UserError(f"{owner}: val_scenes={list(val_scenes)} must be some but not all of {', '.join(DEMO_SCENES)}")
        self.color_root = Path(color_root) if color_root is not None else None
        self.color_hq_dirs = [Path(folder) for folder in color_hq_dirs]
        self.texture_root = Path(texture_root) if texture_root is not None else None
        self.texture_args = (texture_layout, texture_phone, texture_lq_dir, texture_hq_dir)
        self.noisy_root = Path(noisy_root) if noisy_root is not None else None
        self.noisy_pattern = noisy_pattern
        self.clean_dirs = [Path(folder) for folder in clean_dirs]
        self.clean_pattern = clean_pattern
        self.low_degradations = (color_degradation, demo_texture_degradation, demo_noise_degradation)
        has_source = (self.color_root is not None or bool(self.color_hq_dirs), self.texture_root is not None, self.noisy_root is not None)
        use_demo = not any(has_source) if demo is None else demo
        #: Per dataset: draw it from its source (``"source"``), from the demo photos (``"demo"``) or never (``None``).
        self.origins = tuple("source" if real else "demo" if use_demo else None for real in has_source)
        if not any(self.origins):
            raise UserError(f"{owner}: no training data: set {_SOURCES}, or demo=True for the demo photos")
        self.domain_weights = tuple(float(weight) for weight in domain_weights)
        if not any(self.domain_weights[d] > 0 for d, origin in enumerate(self.origins) if origin):
            drawable = [DOMAINS[d] for d, origin in enumerate(self.origins) if origin]
            raise UserError(f"{owner}: domain_weights={list(domain_weights)} give weight 0 to every dataset with data ({drawable})")
        self.val_scenes = list(val_scenes)
        self.val_degradation = val_degradation
        self.val_root = Path(val_root) if val_root is not None else None
        self.val_args = dict(layout=val_layout, phone=texture_phone, lq_dir=val_lq_dir, hq_dir=val_hq_dir)
        self.val_args.update(lq_suffix=val_lq_suffix, hq_suffix=val_hq_suffix)
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_crop = val_crop
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        #: (dataset, quality) → its pool, for the datasets that can be drawn (filled by :meth:`setup`).
        self.pools: dict[tuple[int, int], DomainPool] = {}
        self.val_dataset: Optional[Dataset] = None

    def setup(self, stage: Optional[str] = None) -> None:
        """Find every pool and the validation set (once); raises ``DatasetLayoutError``."""
        if self.pools:
            return
        demo = [image for scene in self.train_scenes for image in load_scene(scene)] if "demo" in self.origins else []
        pools: dict[tuple[int, int], DomainPool] = {}
        for dataset, origin in enumerate(self.origins):
            if origin is None or self.domain_weights[dataset] == 0:
                continue
            low, high = self._source_pools(dataset) if origin == "source" else self._demo_pools(dataset, demo)
            pools[(dataset, 0)], pools[(dataset, 1)] = low, high
        counts = ", ".join(f"{DOMAINS[d]} {QUALITIES[q]}: {len(pool.sources)}" for (d, q), pool in sorted(pools.items()))
        rank_zero_info(f"MultiDomainDataModule: training images per pool: {counts}")
        self.val_dataset = self._validation_set()
        self.pools = pools

    def _source_pools(self, dataset: int) -> tuple[DomainPool, DomainPool]:
        if dataset == 0:
            paths, names = clean_images(self.color_root, self.color_hq_dirs)
            return DomainPool(list(paths), names, self.low_degradations[0]), DomainPool(list(paths), list(names))
        if dataset == 1:
            (phone, phone_names), (dslr, dslr_names) = texture_images(self.texture_root, *self.texture_args)
            return DomainPool(list(phone), phone_names), DomainPool(list(dslr), dslr_names)
        noisy, noisy_names, reader = noisy_images(self.noisy_root, self.noisy_pattern)
        clean, clean_names = clean_images(None, self.clean_dirs, self.clean_pattern)
        return DomainPool(list(noisy), noisy_names, reader=reader), DomainPool(list(clean), clean_names)

    def _demo_pools(self, dataset: int, demo: list[tuple[str, np.ndarray]]) -> tuple[DomainPool, DomainPool]:
        names, images = [name for name, _ in demo], [image for _, image in demo]
        return DomainPool(list(images), list(names), self.low_degradations[dataset]), DomainPool(list(images), list(names))

    def _validation_set(self) -> Dataset:
        if self.val_root is not None:
            pairs = PairedDataModule(str(self.val_root), **self.val_args).all_pairs()
            pairs = drop_unreadable(pairs, lambda pair: (pair.lq, pair.hq), "validation")
            rank_zero_info(f"MultiDomainDataModule: {len(pairs)} validation pairs in {self.val_root}")
            return PairedImageDataset(pairs, self.val_crop)
        held_out = [image for scene in self.val_scenes for image in load_scene(scene)]
        names, images = [name for name, _ in held_out], [image for _, image in held_out]
        return DegradedImageDataset(images, names, self.val_degradation, self.seed, self.val_crop)

    def train_dataloader(self) -> DataLoader:
        """Random patches with labels and masks (see :class:`MultiDomainPatchDataset`)."""
        dataset = MultiDomainPatchDataset(self.pools, self.domain_weights, self.patch_size, self.samples_per_epoch)
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """Paired evaluation images ``{"lq", "hq", "name"}``, centre-cropped to ``val_crop``."""
        return make_loader(self.val_dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader (items also carry ``hq``)."""
        return self.val_dataloader()
