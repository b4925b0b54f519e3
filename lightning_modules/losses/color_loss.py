"""DPED's colour loss: squared difference of Gaussian-blurred images.

Blurring first makes the loss insensitive to the small misalignment of phone/DSLR
pairs (the thesis's "pixel-shift insensitive" loss).
"""

import kornia
import torch
from torch import nn

__all__ = ["dped_gauss_kernel", "color_loss", "ColorLoss"]


def dped_gauss_kernel(size: int = 21, nsig: float = 3.0) -> torch.Tensor:
    """DPED's ``utils.gauss_kernel`` as a normalised 1-D kernel.

    DPED takes the square root of the outer product of normal-CDF differences over
    ``size`` taps spanning ±``nsig``; that 2-D kernel equals the outer product of the
    1-D kernel returned here (square root of the CDF differences, normalised), so it is
    applied separably. It is effectively a Gaussian with σ ≈ 4.7 px, not 3 px.

    Example:
        >>> k = dped_gauss_kernel()
        >>> k.shape, round(float(k.sum()), 6)
        (torch.Size([21]), 1.0)
    """
    interval = (2 * nsig + 1.0) / size
    x = torch.linspace(-nsig - interval / 2, nsig + interval / 2, size + 1, dtype=torch.float64)
    taps = torch.diff(torch.special.ndtr(x)).sqrt()
    return (taps / taps.sum()).float()


def _check(name: str, *images: torch.Tensor) -> None:
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) != 1 or images[0].ndim != 4:
        raise ValueError(f"{name} expects two (B, C, H, W) tensors of one shape, got {sorted(shapes)}")


def color_loss(enhanced: torch.Tensor, target: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Σ over pixels and channels of (blur(target) − blur(enhanced))² / (2B).

    The reduction is DPED's ``train_model.py`` (a sum, divided by twice the batch), so
    DPED's weight 0.5 means what it meant. Zero padding at the borders, as TF 'SAME'.

    Args:
        enhanced: (B, 3, H, W) in [0, 1].
        target: (B, 3, H, W) in [0, 1].
        kernel: 1-D blur kernel, e.g. :func:`dped_gauss_kernel`.

    Example:
        >>> x = torch.zeros(2, 3, 8, 8)
        >>> float(color_loss(x, x, dped_gauss_kernel()))
        0.0
    """
    _check("color_loss", enhanced, target)
    # In fp32 under mixed precision: a sum over every pixel, and bf16 grouped convolutions
    # in channels_last did not finish in 37 min on a CPU without native BF16 (PyTorch 2.14, AVX2).
    with torch.autocast(enhanced.device.type, enabled=False):
        enhanced, target = enhanced.float(), target.float()
        k = kernel.to(enhanced).unsqueeze(0)
        blur = lambda image: kornia.filters.filter2d_separable(image, k, k, border_type="constant")  # noqa: E731
        return (blur(target) - blur(enhanced)).pow(2).sum() / (2 * enhanced.shape[0])


class ColorLoss(nn.Module):
    """Module form of :func:`color_loss` holding DPED's blur kernel.

    Args:
        weight: the loss weight in the generator objective (0.5 in DPED).
        kernel_size: taps of the blur (21 in DPED).
        nsig: the blur spans ±nsig (3 in DPED).
    """

    def __init__(self, weight: float = 0.5, kernel_size: int = 21, nsig: float = 3.0):
        super().__init__()
        self.weight = weight
        self.register_buffer("kernel", dped_gauss_kernel(kernel_size, nsig), persistent=False)

    def forward(self, enhanced: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return color_loss(enhanced, target, self.kernel)
