"""DPED's total-variation loss (squared neighbour differences)."""

import torch
from torch import nn

__all__ = ["tv_loss", "TVLoss"]


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean of squared vertical neighbour differences + mean of squared horizontal ones.

    Means run over batch, channels and pixels: DPED's ``2 * (x_tv / tv_x_size + y_tv /
    tv_y_size) / batch_size`` with ``l2_loss = sum / 2``. Unlike kornia's
    ``total_variation`` (a sum of absolute differences) the differences are squared.

    Args:
        image: (B, C, H, W).

    Example:
        >>> x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
        >>> float(tv_loss(x))  # horizontal diffs are all 1, vertical all 0
        1.0
    """
    if image.ndim != 4:
        raise ValueError(f"tv_loss expects a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


class TVLoss(nn.Module):
    """Module form of :func:`tv_loss`.

    Args:
        weight: the loss weight in the generator objective (2000 in DPED).
    """

    def __init__(self, weight: float = 2000.0):
        super().__init__()
        self.weight = weight

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return tv_loss(image)
