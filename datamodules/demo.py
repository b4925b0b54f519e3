"""Demo data that needs no download: photos shipped inside scikit-image, degraded on the fly."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytorch_lightning as pl
from jsonargparse import lazy_instance
import skimage.data
from skimage.util import img_as_float32
from torch.utils.data import DataLoader

from datamodules.datasets import DegradedImageDataset, DegradedPatchDataset, check_loader_args, make_loader
from datamodules.degradations import PhoneDegradation
from mobile2dslr.errors import UserError

#: The scenes available offline in scikit-image 0.26 (``motorcycle`` is a stereo pair).
DEMO_SCENES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


def load_scene(scene: str) -> list[tuple[str, np.ndarray]]:
    """The images of one demo scene as (name, float32 HxWx3 in [0, 1]).

    Args:
        scene: One of :data:`DEMO_SCENES`.

    Returns:
        One image named after the scene, or for ``motorcycle`` its two stereo views
        (``motorcycle_left``, ``motorcycle_right``): one scene, never split apart.
    """
    if scene not in DEMO_SCENES:
        raise UserError(f"unknown demo scene {scene!r}; valid scenes: {', '.join(DEMO_SCENES)}")
    if scene == "motorcycle":
        left, right, _ = skimage.data.stereo_motorcycle()
        return [("motorcycle_left", img_as_float32(left)), ("motorcycle_right", img_as_float32(right))]
    return [(scene, img_as_float32(getattr(skimage.data, scene)()))]


class DemoDataModule(pl.LightningDataModule):
    """The embedded default data: every command runs offline with it.

    Scenes in ``val_scenes`` are held out (validation, test and predict: full images,
    degraded deterministically with seed ``seed + index``; names are scene names); the
    other scenes train, as random patches degraded on the fly.

    Args:
        val_scenes: Held-out scenes, from ``astronaut``, ``chelsea``, ``coffee``,
            ``rocket``, ``motorcycle``; at least one scene must remain for training.
        degradation: Makes LQ from HQ (default: ``PhoneDegradation()``, built lazily so
            that LightningCLI records its arguments in the saved config).
        patch_size: Side of the square training patches.
        batch_size: Training batch size (every batch is full).
        samples_per_epoch: Training patches per epoch.
        val_batch_size: Validation/test/predict batch size (the scenes differ in size).
        val_crop: Side of a centre crop of the held-out images, or ``None`` for full size.
        num_workers: DataLoader worker processes.
        seed: Base seed of the validation degradation.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        val_scenes: list[str] = ["chelsea", "coffee"],  # noqa: B006 (copied, never mutated)
        degradation: PhoneDegradation = lazy_instance(PhoneDegradation),
        patch_size: int = 64,
        batch_size: int = 8,
        samples_per_epoch: int = 800,
        val_batch_size: int = 1,
        val_crop: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        check_loader_args(patch_size, batch_size, samples_per_epoch, "DemoDataModule")
        self.val_scenes = list(val_scenes)
        unknown = [scene for scene in self.val_scenes if scene not in DEMO_SCENES]
        if unknown:
            raise UserError(f"DemoDataModule: unknown val_scenes {unknown}; valid scenes: {', '.join(DEMO_SCENES)}")
        self.train_scenes = [scene for scene in DEMO_SCENES if scene not in self.val_scenes]
        if not self.train_scenes or not self.val_scenes:
            raise UserError(
                f"DemoDataModule: val_scenes={self.val_scenes} leaves no "
                f"{'training' if not self.train_scenes else 'validation'} scene; choose from {', '.join(DEMO_SCENES)}"
            )
        self.degradation = degradation
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_batch_size = val_batch_size
        self.val_crop = val_crop
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_images: list[tuple[str, np.ndarray]] = []
        self.val_images: list[tuple[str, np.ndarray]] = []

    def setup(self, stage: Optional[str] = None) -> None:
        """Load the scenes from scikit-image (once)."""
        if not self.train_images:
            self.train_images = [image for scene in self.train_scenes for image in load_scene(scene)]
            self.val_images = [image for scene in self.val_scenes for image in load_scene(scene)]

    def train_dataloader(self) -> DataLoader:
        """Random patches of the training scenes, degraded on the fly."""
        names, images = zip(*self.train_images)
        dataset = DegradedPatchDataset(images, names, self.degradation, self.patch_size, self.samples_per_epoch)
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out scenes, degraded deterministically."""
        names, images = zip(*self.val_images)
        dataset = DegradedImageDataset(images, names, self.degradation, self.seed, self.val_crop)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader (items also carry ``hq``)."""
        return self.val_dataloader()


def export_heldout(folder: str, val_scenes: tuple[str, ...] = ("chelsea", "coffee"), seed: int = 0) -> None:
    """Write the held-out demo scenes as ``folder/lq/<name>.png`` (degraded) and ``folder/hq/<name>.png``.

    The same images and degradation as :class:`DemoDataModule`'s validation set (image
    ``i`` degraded with seed ``seed + i``), as files that ``mobile2dslr evaluate`` and
    ``enhance`` read (``make demo`` uses them).
    """
    from datamodules.io import write_image

    images = [image for scene in val_scenes for image in load_scene(scene)]
    degradation = PhoneDegradation()
    for index, (name, clean) in enumerate(images):
        write_image(f"{folder}/hq/{name}.png", clean)
        write_image(f"{folder}/lq/{name}.png", degradation.degrade(clean, seed=seed + index))
