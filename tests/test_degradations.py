"""PhoneDegradation: deterministic with a seed, and consistently darker/warmer/noisier."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.transform import rescale
from skimage.util import img_as_float32

from datamodules.degradations import STAGES, PhoneDegradation


@pytest.fixture(scope="module")
def clean_images() -> list[np.ndarray]:
    """The demo validation photos, halved to keep the test fast."""
    images = [skimage.data.chelsea(), skimage.data.coffee()]
    return [rescale(img_as_float32(image), 0.5, channel_axis=2, anti_aliasing=True).astype(np.float32) for image in images]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("shape", [(37, 53, 3), (8, 8, 3), (64, 64, 3)])
def test_shape_dtype_and_range(shape: tuple[int, int, int]) -> None:
    clean = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = PhoneDegradation().degrade(clean, seed=3)
    assert out.shape == shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_seed_gives_identical_output_and_different_seeds_differ(clean_images: list[np.ndarray]) -> None:
    degradation = PhoneDegradation()
    clean = clean_images[0]
    first = degradation.degrade(clean, seed=7)
    degradation.degrade(clean, seed=8)  # state in between must not leak
    np.testing.assert_array_equal(PhoneDegradation().degrade(clean, seed=7), first)
    np.testing.assert_array_equal(degradation.degrade(clean, seed=7), first)
    assert np.abs(degradation.degrade(clean, seed=8) - first).mean() > 1e-3


def test_unseeded_calls_follow_numpy_global_seed(clean_images: list[np.ndarray]) -> None:
    degradation = PhoneDegradation()
    np.random.seed(123)
    first = degradation.degrade(clean_images[0])
    second = degradation.degrade(clean_images[0])
    np.random.seed(123)
    np.testing.assert_array_equal(degradation.degrade(clean_images[0]), first)
    assert not np.array_equal(first, second)


def test_defaults_are_darker_warmer_and_plausible(clean_images: list[np.ndarray]) -> None:
    degradation = PhoneDegradation()
    psnrs, brightness_ratios, blue_green_ratios = [], [], []
    for clean in clean_images:
        for seed in range(10):
            degraded = degradation.degrade(clean, seed=seed)
            psnrs.append(_psnr(degraded, clean))
            brightness_ratios.append(degraded.mean() / clean.mean())
            means, clean_means = degraded.mean(axis=(0, 1)), clean.mean(axis=(0, 1))
            blue_green_ratios.append((means[2] / means[1]) / (clean_means[2] / clean_means[1]))
    print(f"default PhoneDegradation: mean PSNR(degraded, clean) = {np.mean(psnrs):.2f} dB "
          f"(min {np.min(psnrs):.1f}, max {np.max(psnrs):.1f}); brightness x{np.mean(brightness_ratios):.2f}")
    # Consistent direction: every sample darker, blue weaker relative to green on average.
    assert max(brightness_ratios) < 0.97
    assert 0.5 < np.mean(brightness_ratios) < 0.9
    assert np.mean(blue_green_ratios) < 0.97
    # Visibly different, but not destroyed (DPED's phone-vs-DSLR patches average ~16 dB).
    assert 12.0 < np.mean(psnrs) < 24.0
    assert max(psnrs) < 30.0


def test_noise_stage_adds_noise_without_shifting_brightness(clean_images: list[np.ndarray]) -> None:
    clean = np.full((64, 64, 3), 0.4, dtype=np.float32)
    noisy = PhoneDegradation(enabled=("noise",), noise_p=1.0).degrade(clean, seed=0)
    assert noisy.std() > 0.005
    assert abs(noisy.mean() - 0.4) < 0.02


def test_stage_switches(clean_images: list[np.ndarray]) -> None:
    clean = clean_images[1]
    np.testing.assert_array_equal(PhoneDegradation(enabled=()).degrade(clean, seed=0), clean)
    all_zero = PhoneDegradation(
        blur_p=0, exposure_p=0, color_cast_p=0, noise_p=0, resample_p=0, jpeg_p=0
    ).degrade(clean, seed=0)
    np.testing.assert_array_equal(all_zero, clean)
    only_jpeg = PhoneDegradation(enabled=("jpeg",), jpeg_p=1.0, jpeg_quality_range=(60, 60)).degrade(clean, seed=0)
    assert 0 < np.abs(only_jpeg - clean).mean() < 0.03
    assert abs(only_jpeg.mean() - clean.mean()) < 0.01  # JPEG alone does not darken
    assert set(STAGES) == {"blur", "exposure", "color_cast", "noise", "resample", "jpeg"}
    with pytest.raises(ValueError, match="unknown stages"):
        PhoneDegradation(enabled=("exposure", "sharpen"))  # type: ignore[arg-type]
