"""Geometric transforms shared by the datasets: identical random crops/flips for LQ and HQ.

Albumentations 2 ``Compose`` objects own their random generators, seeded once at
construction and copied unchanged into every DataLoader worker, where they would give
every worker the same crops and ignore ``seed_everything``. :func:`item_generators` makes
a fresh pair of generators per item from NumPy's global generator instead, which
PyTorch/Lightning seed per worker (and :func:`item_generators` also mixes in the DDP rank).
"""

from __future__ import annotations

import random
from typing import Optional

import albumentations as A
import cv2
import numpy as np
import torch

# Reflect without repeating the edge pixel; OpenCV repeats the reflection for large pads.
_REFLECT = cv2.BORDER_REFLECT_101


def item_generators() -> tuple[np.random.Generator, random.Random]:
    """Fresh generators for one dataset item, drawn from NumPy's global generator.

    Returns:
        A NumPy generator and a ``random.Random``, seeded from ``np.random`` and the
        distributed rank (so DDP ranks differ even with ``num_workers=0``).
    """
    seed = int(np.random.randint(0, 2**31 - 1))
    rank = torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    sequence = np.random.SeedSequence([seed, rank])
    return np.random.default_rng(sequence), random.Random(int(sequence.generate_state(1)[0]))


def training_crop(patch_size: int, paired: bool) -> A.Compose:
    """Random ``patch_size`` crop (reflect-padding smaller images) and a random flip/rot90.

    Args:
        patch_size: Side of the square crop.
        paired: Also transform ``hq`` with exactly the same parameters as ``image``.

    Returns:
        The albumentations pipeline; call it as ``pipeline(image=lq, hq=hq)``.
    """
    return A.Compose(
        [
            A.RandomCrop(patch_size, patch_size, pad_if_needed=True, border_mode=_REFLECT, p=1.0),
            A.D4(p=1.0),  # the 8 flips/quarter turns, all equally likely
        ],
        additional_targets={"hq": "image"} if paired else None,
    )


def apply_training_crop(
    pipeline: A.Compose,
    generators: tuple[np.random.Generator, random.Random],
    image: np.ndarray,
    hq: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Run a :func:`training_crop` pipeline with the item's generators.

    Args:
        pipeline: From :func:`training_crop` (``paired=True`` when ``hq`` is given).
        generators: From :func:`item_generators`.
        image: The LQ image (or the only image).
        hq: The HQ image; must have the same size as ``image``.

    Returns:
        The cropped image and the cropped ``hq`` (``None`` when not given).
    """
    pipeline.set_random_state(*generators)
    if hq is None:
        return pipeline(image=image)["image"], None
    out = pipeline(image=image, hq=hq)
    return out["image"], out["hq"]


def center_crop(image: np.ndarray, size: Optional[int]) -> np.ndarray:
    """Deterministic centre crop to ``size`` x ``size`` (reflect-padded if smaller); None keeps all."""
    if size is None:
        return image
    crop = A.CenterCrop(size, size, pad_if_needed=True, border_mode=_REFLECT, p=1.0)
    return crop(image=image)["image"]


def common_top_left(lq: np.ndarray, hq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop a pair to their common size, anchored top-left (misaligned pairs are not aligned)."""
    height = min(lq.shape[0], hq.shape[0])
    width = min(lq.shape[1], hq.shape[1])
    return lq[:height, :width], hq[:height, :width]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float array → contiguous (3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
