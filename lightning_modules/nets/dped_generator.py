"""DPED / DPED+ generator (Ignatov et al., ICCV 2017; thesis sec. 3.1.1).

One class builds the official DPED generator and every ablation row of the thesis:
the switches choose the activation, the normalisation, MobileNet-style separable convs
and a histogram-equalised input.
"""

from typing import Literal

import kornia
import torch
from torch import nn

__all__ = ["DPEDGenerator", "equalize_luminance"]


def equalize_luminance(image: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise the luminance of RGB images and keep their chroma.

    Equalising each RGB channel on its own shifts the colours; equalising Y of YCbCr
    only raises the contrast, which is what the thesis's "Contrast (HE)" row is after.

    Args:
        image: (B, 3, H, W) RGB in [0, 1].

    Returns:
        (B, 3, H, W) RGB in [0, 1] whose luminance histogram is equalised.
    """
    ycbcr = kornia.color.rgb_to_ycbcr(image.clamp(0, 1))
    y = kornia.enhance.equalize(ycbcr[:, :1].contiguous())
    return kornia.color.ycbcr_to_rgb(torch.cat([y, ycbcr[:, 1:]], dim=1)).clamp(0, 1)


def _activation(kind: str, slope: float) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "relu" else nn.LeakyReLU(slope, inplace=True)


def _norm(kind: str, channels: int, instance_norm_eps: float) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # The official DPED's `_instance_norm`: biased variance, eps 1e-3, learned scale/shift.
        return nn.InstanceNorm2d(channels, eps=instance_norm_eps, affine=True)
    return nn.Identity()


def _conv3x3(channels: int, separable: bool) -> nn.Module:
    if not separable:
        return nn.Conv2d(channels, channels, 3, padding=1)
    # MobileNet: a depthwise 3x3 filter per channel, then a pointwise 1x1 that mixes them.
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        nn.Conv2d(channels, channels, 1),
    )


class _ResidualBlock(nn.Module):
    """conv → norm → act → conv → norm → act, then + input (the official order)."""

    def __init__(self, channels: int, norm: str, activation: str, slope: float, separable: bool, eps: float):
        super().__init__()
        self.body = nn.Sequential(
            _conv3x3(channels, separable),
            _norm(norm, channels, eps),
            _activation(activation, slope),
            _conv3x3(channels, separable),
            _norm(norm, channels, eps),
            _activation(activation, slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DPEDGenerator(nn.Module):
    """The DPED residual generator with the thesis's DPED+ switches.

    9x9 conv (width) → ``blocks`` residual blocks (two 3x3 convs, each followed by a
    norm and the activation, skip added after the second activation) → two 3x3 convs →
    9x9 conv to RGB, output ``tanh(x) * 0.58 + 0.5`` (range (-0.08, 1.08), as DPED:
    clipping to [0, 1] is the caller's choice). Every conv is stride 1 with zero
    'same' padding and a bias, so the output has the input's size.

    ``DPEDGenerator(norm="instance")`` with the other defaults is exactly the official
    DPED generator (401,475 parameters).

    Args:
        width: feature channels of every hidden layer (64 in DPED).
        blocks: number of residual blocks (4 in DPED).
        activation: ``relu`` (DPED) or ``lrelu`` (the thesis's DPED+).
        lrelu_slope: negative slope of ``lrelu`` (0.005 in the thesis).
        norm: ``batch`` (the thesis), ``instance`` (the official DPED code) or ``none``.
        separable: use MobileNet depthwise-separable 3x3 convs.
        input_equalization: histogram-equalise the input's luminance first (thesis's
            "Contrast (HE)" row); part of the network so inference applies it too.
        instance_norm_eps: epsilon of instance norm (1e-3 in the official DPED).

    Example:
        >>> net = DPEDGenerator(width=8, blocks=1)
        >>> net(torch.rand(2, 3, 20, 24)).shape
        torch.Size([2, 3, 20, 24])
    """

    def __init__(
        self,
        width: int = 64,
        blocks: int = 4,
        activation: Literal["relu", "lrelu"] = "relu",
        lrelu_slope: float = 0.005,
        norm: Literal["batch", "instance", "none"] = "batch",
        separable: bool = False,
        input_equalization: bool = False,
        instance_norm_eps: float = 1e-3,
    ):
        super().__init__()
        self.input_equalization = input_equalization
        self.head = nn.Sequential(nn.Conv2d(3, width, 9, padding=4), _activation(activation, lrelu_slope))
        self.blocks = nn.Sequential(
            *[_ResidualBlock(width, norm, activation, lrelu_slope, separable, instance_norm_eps) for _ in range(blocks)]
        )
        self.tail = nn.Sequential(
            _conv3x3(width, separable),
            _activation(activation, lrelu_slope),
            _conv3x3(width, separable),
            _activation(activation, lrelu_slope),
            nn.Conv2d(width, 3, 9, padding=4),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance a batch of RGB images.

        Args:
            image: (B, 3, H, W) RGB in [0, 1].

        Returns:
            (B, 3, H, W) enhanced RGB, in (-0.08, 1.08).
        """
        return self.local_forward(self.global_preprocess(image))

    def global_preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """The whole-image part (histogram equalisation): tiled inference runs it untiled."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"DPEDGenerator expects (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        return equalize_luminance(image) if self.input_equalization else image

    def local_forward(self, image: torch.Tensor) -> torch.Tensor:
        """The convolutional part, which tiled inference runs tile by tile."""
        x = self.blocks(self.head(image))
        return torch.tanh(self.tail(x)) * 0.58 + 0.5
