"""MPI Sintel intrinsic images (image, albedo, shading) for MDIE's decomposition pretraining.

Intrinsics are ambiguous in scale: on the Sintel samples ``I ≈ k·A·S`` with one ``k``
of 1.4-1.7 per image. Every item therefore carries ``scale``, the ``k`` of its frame:
the least-squares fit for shipped shading (:func:`composition_scale`), and exact for
shading derived from image and albedo (:func:`derive_shading`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

from datamodules.datasets import Item, ItemCache, SkipUnreadable, check_loader_args, drop_unreadable, make_loader
from datamodules.demo import DEMO_SCENES
from datamodules.intrinsic_demo import demo_intrinsics
from datamodules.io import read_image
from datamodules.sintel_layouts import (
    LAYOUTS,
    IntrinsicFrame,
    Layout,
    MapSource,
    PassName,
    detect_layout,
    find_frames,
    split_frames,
)
from datamodules.transforms import apply_training_crop, center_crop, item_generators, to_tensor, training_crop
from mobile2dslr.errors import ImageReadError, UserError

#: Albedo below this (in a channel) carries no usable reflectance: an 8-bit value of 1 or 2
#: is quantised by up to 50 %, so ``I / A`` there is noise.
ALBEDO_EPS = 1e-2
#: Derived shading is divided by its value at this percentile (which becomes 1).
SHADING_PERCENTILE = 99.0
#: Held-out demo scenes when ``root`` is None (those of :class:`~datamodules.demo.DemoDataModule`).
DEMO_VAL_SCENES: tuple[str, ...] = ("chelsea", "coffee")


def composition_scale(image: np.ndarray, albedo: np.ndarray, shading: np.ndarray) -> float:
    """The least-squares ``k`` of ``image ≈ k · albedo · shading``.

    ``k = Σ I·P / Σ P²`` with ``P = A·S``, over every pixel and channel.

    Args:
        image: (H, W, 3) float array.
        albedo: (H, W, 3) float array.
        shading: (H, W, 3) float array.

    Returns:
        The scale ``k`` minimising ``||I - k·A·S||²`` (1.0 when ``A·S`` is all zero).

    Example:
        >>> albedo, shading = np.full((2, 2, 3), 0.5), np.full((2, 2, 3), 0.8)
        >>> round(composition_scale(1.5 * albedo * shading, albedo, shading), 6)
        1.5
    """
    product = np.asarray(albedo, dtype=np.float64) * np.asarray(shading, dtype=np.float64)
    energy = float(np.sum(product * product))
    return float(np.sum(np.asarray(image, dtype=np.float64) * product) / energy) if energy > 0 else 1.0


def derive_shading(image: np.ndarray, albedo: np.ndarray, eps: float = ALBEDO_EPS) -> tuple[np.ndarray, float]:
    """Shading from image and albedo, ``S = I / A``, normalised by one per-image scale.

    Per pixel and channel ``S = I / A`` where ``A >= eps``. A channel with ``A < eps``
    in a pixel whose other channels are usable takes the pixel's grey ratio
    ``Σ I / Σ A`` over those channels (shading is mostly grey); a pixel with no usable
    channel takes the shading of its nearest usable pixel (shading is smooth). ``S`` is
    never clipped to 1: it is divided by its :data:`SHADING_PERCENTILE` th percentile
    over the usable values, so that a few near-black albedo pixels cannot set the scale.

    Args:
        image: (H, W, 3) float image.
        albedo: (H, W, 3) float albedo of the same size.
        eps: Smallest usable albedo value.

    Returns:
        ``(shading, scale)``: float32 (H, W, 3) shading (positive where the image is,
        and may exceed 1) and the scale with ``image == scale · albedo · shading`` in
        every channel where ``albedo >= eps``. An albedo with no usable value gives
        shading 1 and scale 1.
    """
    usable = albedo >= eps
    if not usable.any():
        return np.ones_like(image, dtype=np.float32), 1.0
    ratio = image / np.where(usable, albedo, 1.0)
    grey_den = np.sum(np.where(usable, albedo, 0.0), axis=2, keepdims=True)
    grey = np.sum(np.where(usable, image, 0.0), axis=2, keepdims=True) / np.maximum(grey_den, eps)
    shading = np.where(usable, ratio, grey)
    dark = ~usable.any(axis=2)
    if dark.any():
        nearest = ndimage.distance_transform_edt(dark, return_distances=False, return_indices=True)
        shading = shading[nearest[0], nearest[1]]
    scale = float(np.percentile(ratio[usable], SHADING_PERCENTILE))
    if scale <= 0:  # a black image: any scale composes it
        scale = 1.0
    return (shading / scale).astype(np.float32), scale


def load_triplet(frame: IntrinsicFrame, max_side: Optional[int] = None) -> tuple[np.ndarray, ...]:
    """Read a frame's maps, downscale them alike, and give its shading and scale.

    Args:
        frame: The frame (files, or arrays in memory).
        max_side: Downscale (OpenCV area interpolation) so that the long side is at most
            this; ``None`` keeps the size. Shading is derived after resizing, so the
            derived ``I = scale·A·S`` stays exact.

    Returns:
        ``(image, albedo, shading, scale)``: three float32 (H, W, 3) arrays and a float.

    Raises:
        ImageReadError: a file is unreadable, or the maps differ in size.
    """
    maps = [_load(m) for m in (frame.image, frame.albedo, frame.shading) if m is not None]
    sizes = {m.shape[:2] for m in maps}
    if len(sizes) > 1:
        files = ", ".join(str(path) for path in frame.files()) or "in memory"
        raise ImageReadError(f"{frame.name}: image, albedo and shading differ in size {sorted(sizes)} ({files})")
    if max_side is not None and max(maps[0].shape[:2]) > max_side:
        resize = A.LongestMaxSize(max_size=max_side, interpolation=cv2.INTER_AREA, p=1.0)
        maps = [resize(image=m)["image"] for m in maps]
    image, albedo = maps[0], maps[1]
    if len(maps) == 3:
        return image, albedo, maps[2], composition_scale(image, albedo, maps[2])
    return (image, albedo, *derive_shading(image, albedo))


def _load(source: MapSource) -> np.ndarray:
    return read_image(source) if isinstance(source, Path) else source


def _item(image: np.ndarray, albedo: np.ndarray, shading: np.ndarray, scale: float, name: str) -> Item:
    return {
        "image": to_tensor(image),
        "albedo": to_tensor(albedo),
        "shading": to_tensor(shading),
        "scale": torch.tensor(scale, dtype=torch.float32),
        "name": name,
    }


class IntrinsicPatchDataset(Dataset):
    """Training patches: a random frame, one random crop and flip/rot90 for its three maps.

    Args:
        frames: The training frames (files are read when first drawn, then kept in memory
            up to :data:`~datamodules.datasets.CACHE_BYTES` per worker).
        patch_size: Side of the square patches; smaller frames are reflect-padded.
        samples_per_epoch: Items per epoch (``__len__``).
        max_side: Downscale frames to this long side before cropping (``None``: keep).
    """

    def __init__(
        self, frames: Sequence[IntrinsicFrame], patch_size: int, samples_per_epoch: int, max_side: Optional[int] = None
    ) -> None:
        self.frames = list(frames)
        self.samples_per_epoch = samples_per_epoch
        self.max_side = max_side
        self.crop = training_crop(patch_size, paired=True)
        files = self.frames[0].files() if self.frames else []
        self.skip = SkipUnreadable(len(self.frames), str(files[0].parent) if files else "demo intrinsics")
        self.decoded = ItemCache()  # per DataLoader worker: decoded frames up to its budget

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Item:
        generators = item_generators()

        def load(choice: int) -> Item:
            frame = self.frames[choice]
            decoded = self.decoded.get(choice)
            if decoded is None:  # three PNG decodes (and a resize) per patch would starve the net
                image, albedo, shading, scale = load_triplet(frame, self.max_side)
                # Albedo and shading ride as one 6-channel target: the crop cannot tell them apart.
                decoded = self.decoded.put(choice, {"image": image, "maps": np.concatenate([albedo, shading], axis=2), "scale": scale})
            image, maps = apply_training_crop(self.crop, generators, decoded["image"], decoded["maps"])
            return _item(image, maps[..., :3], maps[..., 3:], decoded["scale"], frame.name)

        return self.skip.draw(generators[0], load)


class IntrinsicImageDataset(Dataset):
    """Evaluation frames, whole or centre-cropped, deterministic (decoded items are cached).

    Args:
        frames: The frames, in a fixed order.
        crop: Side of a centre crop, or ``None`` for the whole frames.
        max_side: Downscale frames to this long side before cropping (``None``: keep).
    """

    def __init__(
        self, frames: Sequence[IntrinsicFrame], crop: Optional[int] = None, max_side: Optional[int] = None
    ) -> None:
        self.frames = list(frames)
        self.crop = crop
        self.max_side = max_side
        self.cache = ItemCache()

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Item:
        cached = self.cache.get(index)
        if cached is not None:
            return cached
        image, albedo, shading, scale = load_triplet(self.frames[index], self.max_side)
        maps = [center_crop(m, self.crop) for m in (image, albedo, shading)]
        return self.cache.put(index, _item(*maps, scale, self.frames[index].name))


class SintelDataModule(pl.LightningDataModule):
    """MPI Sintel intrinsic triplets, or synthetic demo triplets when ``root`` is None.

    Layouts (see :mod:`datamodules.sintel_layouts`): ``official``
    (``training/{clean,final,albedo,shading}/<scene>/frame_XXXX.png``), ``mpi_main``
    (``MPI-main-{clean,final,albedo,shading}/<scene>_frame_XXXX.png``) and ``numbered``
    (``{image,gt_albedo,gt_shading}NNNN.png``). Shading is the shipped file when present,
    else derived (:func:`derive_shading`). Items: ``{"image", "albedo", "shading"}``
    (3, H, W) float32 tensors (shading may exceed 1), ``"scale"`` (the frame's ``k`` in
    ``I ≈ k·A·S``) and ``"name"``. Splits never share a scene. Validation, test and
    predict all serve the held-out frames.

    Args:
        root: Dataset folder; ``None`` serves :func:`~datamodules.intrinsic_demo.demo_intrinsics`
            of the demo scenes (held out by default: chelsea and coffee).
        layout: ``auto`` (the first of official, mpi_main, numbered found), or one forced.
        pass_name: Sintel render pass: ``clean`` or ``final``.
        val_scenes: Held-out scenes of a named layout (or of the demo); default: a
            deterministic ~20 % of the sorted scenes, at least one.
        val_frames: Held-out frame ids of the numbered layout, required there: ``["0011"]``
            (quote them in YAML, where ``0011`` is the octal number 9).
        patch_size: Side of the square training patches.
        batch_size: Training batch size (every batch is full).
        samples_per_epoch: Training patches per epoch.
        val_crop: Side of a centre crop of held-out frames; ``None`` keeps them whole.
        val_batch_size: Validation/test/predict batch size.
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
        max_side: Downscale frames so that their long side is at most this (e.g. 512 for
            fast CPU runs); ``None`` keeps full resolution.
    """

    def __init__(
        self,
        root: Optional[str] = None,
        layout: Layout = "auto",
        pass_name: PassName = "clean",
        val_scenes: Optional[list[str]] = None,
        val_frames: Optional[list[str]] = None,
        patch_size: int = 128,
        batch_size: int = 8,
        samples_per_epoch: int = 800,
        val_crop: Optional[int] = None,
        val_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        max_side: Optional[int] = None,
    ) -> None:
        super().__init__()
        check_loader_args(patch_size, batch_size, samples_per_epoch, "SintelDataModule")
        if layout not in ("auto", *LAYOUTS):
            raise UserError(f"SintelDataModule: unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")
        if pass_name not in ("clean", "final"):
            raise UserError(f"SintelDataModule: unknown pass_name {pass_name!r}; use clean or final")
        if max_side is not None and max_side < 1:
            raise UserError(f"SintelDataModule: max_side must be positive or None, got {max_side}")
        self.root = Path(root) if root is not None else None
        self.layout = layout
        self.pass_name = pass_name
        self.val_scenes = list(val_scenes) if val_scenes is not None else None
        self.val_frames = [str(f) for f in val_frames] if val_frames is not None else None
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_crop = val_crop
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.max_side = max_side
        self.train_split: list[IntrinsicFrame] = []
        self.val_split: list[IntrinsicFrame] = []

    def setup(self, stage: Optional[str] = None) -> None:
        """Find and split the frames (once); raises the project's one-line errors."""
        if self.train_split:
            return
        if self.root is None:
            frames = [
                IntrinsicFrame(image, albedo, shading, name, scene)
                for scene in DEMO_SCENES
                for name, image, albedo, shading in demo_intrinsics(scene)
            ]
            val_scenes = self.val_scenes if self.val_scenes is not None else list(DEMO_VAL_SCENES)
            train, val = split_frames(frames, val_scenes, self.val_frames, "demo intrinsics")
        else:
            layout = detect_layout(self.root, self.layout)
            frames = find_frames(self.root, layout, self.pass_name)
            train, val = split_frames(frames, self.val_scenes, self.val_frames, str(self.root))
            val = drop_unreadable(val, IntrinsicFrame.files, "validation")
        self.train_split, self.val_split = train, val

    def train_dataloader(self) -> DataLoader:
        """Random ``patch_size`` patches of random training frames, maps cropped alike."""
        dataset = IntrinsicPatchDataset(self.train_split, self.patch_size, self.samples_per_epoch, self.max_side)
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out frames, whole or centre-cropped to ``val_crop``."""
        dataset = IntrinsicImageDataset(self.val_split, self.val_crop, self.max_side)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()
