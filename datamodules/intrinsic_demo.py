"""Synthetic intrinsic triplets (image, albedo, shading) built from the offline demo photos.

``make train-mdie`` must run from a fresh clone with no dataset, so the Sintel pretraining
falls back to these: the albedo is the photo flattened into superpixels of constant colour
(reflectance is piecewise constant), the shading a smooth, positive, mostly grey field
(what a few soft lights and a directional fall-off give), and the image their product.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
from scipy import ndimage
from skimage.segmentation import slic

from datamodules.demo import load_scene

#: Reflectance range of the synthetic albedo: real materials are neither black nor white.
ALBEDO_RANGE: tuple[float, float] = (0.05, 0.85)
#: Range of the synthetic shading before the image is clipped (shading may exceed 1).
SHADING_RANGE: tuple[float, float] = (0.3, 1.6)

Triplet = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def demo_intrinsics(scene: str, seed: int = 0) -> list[Triplet]:
    """The synthetic intrinsic triplets of one demo scene, computed once per process.

    For each image of :func:`datamodules.demo.load_scene`: ``albedo`` is its SLIC
    superpixels filled with their mean colour, rescaled into :data:`ALBEDO_RANGE`;
    ``shading`` is :func:`smooth_shading` (seeded by ``seed`` and the image name);
    ``image = clip(albedo * shading, 0, 1)``, and where that clipped, the shading is
    recomputed as ``image / albedo``, so that ``image == albedo * shading`` holds exactly
    (composition scale 1) and the shading stays smooth everywhere else.

    Args:
        scene: One of :data:`datamodules.demo.DEMO_SCENES`.
        seed: Seed of the shading fields.

    Returns:
        ``(name, image, albedo, shading)`` per image of the scene, float32 HxWx3 arrays,
        read-only (they are shared by every caller); ``image`` and ``albedo`` are in
        [0, 1], ``shading`` is positive and may exceed 1.

    Raises:
        UserError: ``scene`` is not a demo scene.
    """
    return list(_cached_intrinsics(scene, seed))


@functools.lru_cache(maxsize=None)
def _cached_intrinsics(scene: str, seed: int) -> tuple[Triplet, ...]:
    triplets = []
    for name, photo in load_scene(scene):
        albedo = superpixel_albedo(photo)
        # crc32, not hash(): Python salts string hashes per process
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        shading = smooth_shading(photo.shape[0], photo.shape[1], rng)
        image = np.clip(albedo * shading, 0.0, 1.0)
        clipped = albedo * shading > 1.0
        shading = np.where(clipped, image / albedo, shading).astype(np.float32)
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in (image, albedo, shading)]
        for array in arrays:
            array.flags.writeable = False
        triplets.append((name, *arrays))
    return tuple(triplets)


def superpixel_albedo(photo: np.ndarray, segments: int = 300) -> np.ndarray:
    """Piecewise-constant reflectance: SLIC superpixels of ``photo`` filled with their mean colour.

    Args:
        photo: Float RGB image (H, W, 3) in [0, 1].
        segments: Approximate number of superpixels.

    Returns:
        float32 (H, W, 3) in :data:`ALBEDO_RANGE`: the mean colours, divided by their
        99th percentile so that dark photos still give plausible reflectances.
    """
    # 4 iterations instead of 10: the superpixels barely move after that, and the demo loads 3x faster
    labels = slic(photo, n_segments=segments, compactness=10.0, max_num_iter=4, start_label=0, channel_axis=-1)
    labels_ids = np.arange(labels.max() + 1)
    means = np.stack([ndimage.mean(photo[..., c], labels, labels_ids) for c in range(3)], axis=1)
    flat = means[labels]
    low, high = ALBEDO_RANGE
    flat = flat / max(float(np.percentile(flat, 99)), 1e-3)
    return np.clip(low + (high - low) * flat, low, high).astype(np.float32)


def smooth_shading(height: int, width: int, rng: np.random.Generator, bumps: int = 4) -> np.ndarray:
    """A smooth, positive, mostly grey shading field (a Lambertian-like stand-in).

    A directional ramp (light falling off across the frame) plus ``bumps`` broad
    Gaussian highlights, rescaled into :data:`SHADING_RANGE`, times a faint per-channel
    tint (at most 5 %: coloured light, but mostly grey).

    Args:
        height: Rows of the field.
        width: Columns of the field.
        rng: Source of the random light layout.
        bumps: Number of Gaussian highlights.

    Returns:
        float32 (height, width, 3), every value in about 0.3-1.7.
    """
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rows, cols = rows / max(height, width), cols / max(height, width)  # isotropic units
    angle = rng.uniform(0.0, 2.0 * np.pi)
    field = 0.6 * (np.cos(angle) * cols + np.sin(angle) * rows)
    for _ in range(bumps):
        centre_r, centre_c = rng.uniform(0.0, height / max(height, width)), rng.uniform(0.0, width / max(height, width))
        sigma = rng.uniform(0.15, 0.4)
        field += rng.uniform(0.3, 1.0) * np.exp(-((rows - centre_r) ** 2 + (cols - centre_c) ** 2) / (2 * sigma**2))
    low, high = SHADING_RANGE
    field = low + (high - low) * (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    tint = 1.0 + rng.uniform(-0.05, 0.05, size=3)
    return (field[..., None] * tint).astype(np.float32)
