"""Synthetic phone degradation: a clean photo in, a plausible phone photo out.

The stages follow the capture chain (optics → exposure → white balance → sensor → ISP
resampling → JPEG) and are albumentations transforms, except the per-channel colour
gains, which albumentations lacks (``MultiplicativeNoise`` draws every channel from one
range, ``PlanckianJitter`` only moves along the black-body locus). Random parameters vary
inside ranges that all point the same way (darker, warm/green cast, noisier, softer) so
that a network can learn the inverse. The defaults are modelled on DPED's iPhone 3GS vs
Canon 70D patches, whose phone patches are ~0.74x as bright with blue the weakest channel
(mean PSNR between the two: ~16 dB).
"""

from __future__ import annotations

import random
from typing import Any, Literal, Optional

import albumentations as A
import cv2
import numpy as np

Stage = Literal["blur", "exposure", "color_cast", "noise", "resample", "jpeg"]
#: Every stage, in the order it is applied.
STAGES: tuple[Stage, ...] = ("blur", "exposure", "color_cast", "noise", "resample", "jpeg")


class ChannelGain(A.ImageOnlyTransform):
    """Multiply R, G and B by gains drawn from one range per channel (a white-balance error).

    Args:
        red_range: Range of the red gain.
        green_range: Range of the green gain.
        blue_range: Range of the blue gain.
        p: Probability of applying the transform.
    """

    def __init__(
        self,
        red_range: tuple[float, float] = (1.0, 1.0),
        green_range: tuple[float, float] = (1.0, 1.0),
        blue_range: tuple[float, float] = (1.0, 1.0),
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.ranges = (tuple(red_range), tuple(green_range), tuple(blue_range))

    def get_params(self) -> dict[str, Any]:
        """Draw one gain per channel from the transform's own generator."""
        return {"gains": np.array([self.py_random.uniform(*r) for r in self.ranges], dtype=np.float32)}

    def apply(self, img: np.ndarray, gains: np.ndarray, **params: Any) -> np.ndarray:
        """Scale each channel; float32 images stay in [0, 1]."""
        if img.dtype == np.uint8:
            return np.clip(np.rint(img * gains), 0, 255).astype(np.uint8)
        return np.clip(img * gains, 0.0, 1.0).astype(np.float32)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """Arguments albumentations serialises."""
        return ("ranges",)


class PhoneDegradation:
    """Turn a clean photo into a phone-like one with a configurable albumentations pipeline.

    Stages, in order, each applied with its own probability (``*_p``; 0 disables it) and
    listed in ``enabled`` to be active at all:

    - ``blur``: lens softness/defocus: Gaussian blur (``blur_sigma_range``) or a
      defocus disc (``defocus_radius_range``), one of the two.
    - ``exposure``: under-exposure/night: brightness multiplied by ``exposure_range``,
      then gamma ``x ** g`` with g in ``gamma_range`` (g > 1 darkens mid-tones).
    - ``color_cast``: white-balance error: per-channel gains (warm/green by default).
    - ``noise``: sensor noise: signal-dependent Poisson shot noise (albumentations
      ``ShotNoise``, ``shot_noise_range``) plus Gaussian read noise (``read_noise_range``,
      standard deviation as a fraction of the [0, 1] range).
    - ``resample``: downscale by ``downscale_range`` and upscale back (soft detail).
    - ``jpeg``: JPEG compression with quality in ``jpeg_quality_range``.

    Args:
        enabled: The active stages (by default all of them).
        blur_p: Probability of the blur stage.
        blur_sigma_range: Gaussian blur sigma range, pixels.
        defocus_radius_range: Defocus disc radius range, pixels (ints).
        exposure_p: Probability of the exposure stage.
        exposure_range: Brightness multiplier range (below 1 darkens).
        gamma_range: Gamma exponent range applied after the multiplier.
        color_cast_p: Probability of the colour-cast stage.
        red_gain_range: Red channel gain range.
        green_gain_range: Green channel gain range.
        blue_gain_range: Blue channel gain range.
        noise_p: Probability of the noise stage.
        shot_noise_range: Poisson scale range of ``ShotNoise`` (larger is noisier; it
            works in linear light, so dark areas get relatively more noise).
        read_noise_range: Gaussian read-noise standard deviation range, in [0, 1] units.
        resample_p: Probability of the resampling stage.
        downscale_range: Downscale factor range (0-1) before upscaling back.
        jpeg_p: Probability of the JPEG stage.
        jpeg_quality_range: JPEG quality range (1-100, ints).

    Example:
        >>> import numpy as np
        >>> clean = np.full((32, 32, 3), 0.5, dtype=np.float32)
        >>> phone = PhoneDegradation().degrade(clean, seed=0)
        >>> phone.shape, phone.dtype, bool(phone.mean() < clean.mean())
        ((32, 32, 3), dtype('float32'), True)
    """

    def __init__(
        self,
        enabled: tuple[Stage, ...] = STAGES,
        blur_p: float = 0.5,
        blur_sigma_range: tuple[float, float] = (0.3, 1.0),
        defocus_radius_range: tuple[int, int] = (1, 2),
        exposure_p: float = 1.0,
        exposure_range: tuple[float, float] = (0.6, 0.9),
        gamma_range: tuple[float, float] = (1.0, 1.25),
        color_cast_p: float = 0.9,
        red_gain_range: tuple[float, float] = (0.97, 1.03),
        green_gain_range: tuple[float, float] = (1.0, 1.05),
        blue_gain_range: tuple[float, float] = (0.9, 0.98),
        noise_p: float = 0.9,
        shot_noise_range: tuple[float, float] = (0.001, 0.005),
        read_noise_range: tuple[float, float] = (0.005, 0.02),
        resample_p: float = 0.5,
        downscale_range: tuple[float, float] = (0.5, 0.9),
        jpeg_p: float = 0.9,
        jpeg_quality_range: tuple[int, int] = (60, 90),
    ) -> None:
        unknown = sorted(set(enabled) - set(STAGES))
        if unknown:
            raise ValueError(f"PhoneDegradation: unknown stages {unknown}; valid: {list(STAGES)}")
        self.enabled = tuple(enabled)
        linear = cv2.INTER_LINEAR
        stages: dict[str, A.BasicTransform] = {
            "blur": A.OneOf(
                [
                    A.GaussianBlur(blur_limit=0, sigma_limit=tuple(blur_sigma_range), p=1.0),
                    A.Defocus(radius=tuple(defocus_radius_range), alias_blur=(0.1, 0.3), p=1.0),
                ],
                p=blur_p,
            ),
            "exposure": A.Sequential(
                [
                    A.MultiplicativeNoise(multiplier=tuple(exposure_range), per_channel=False, p=1.0),
                    # RandomGamma takes gamma x 100.
                    A.RandomGamma(gamma_limit=tuple(100 * g for g in gamma_range), p=1.0),
                ],
                p=exposure_p,
            ),
            "color_cast": ChannelGain(red_gain_range, green_gain_range, blue_gain_range, p=color_cast_p),
            "noise": A.Sequential(
                [
                    A.ShotNoise(scale_range=tuple(shot_noise_range), p=1.0),
                    A.GaussNoise(std_range=tuple(read_noise_range), per_channel=True, p=1.0),
                ],
                p=noise_p,
            ),
            "resample": A.Downscale(
                scale_range=tuple(downscale_range),
                interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": linear},
                p=resample_p,
            ),
            "jpeg": A.ImageCompression(quality_range=tuple(jpeg_quality_range), p=jpeg_p),
        }
        self.pipeline = A.Compose([stages[name] for name in STAGES if name in self.enabled])

    def degrade(self, image: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        """Degrade one image.

        Args:
            image: Clean image, (H, W, 3) float in [0, 1].
            seed: Seed for a reproducible result (validation sets use the image index).
                ``None`` draws one from NumPy's global generator, which Lightning seeds per
                DataLoader worker, so workers differ and ``seed_everything`` reproduces them.

        Returns:
            The degraded image, same shape, float32 in [0, 1].
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"PhoneDegradation expects an (H, W, 3) image, got shape {image.shape}")
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        # Albumentations 2 keeps its own generators (seeded at construction, copied into every
        # worker): replace them so the result depends on `seed` only.
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
        clean = np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)
        degraded = self.pipeline(image=clean)["image"]  # JPEG round-trips through uint8 inside
        return np.clip(degraded, 0.0, 1.0).astype(np.float32, copy=False)

    def __call__(self, image: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        """Same as :meth:`degrade`."""
        return self.degrade(image, seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(enabled={list(self.enabled)})"
