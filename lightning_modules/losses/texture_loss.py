"""DPED's adversarial texture loss on grayscale patches."""

import kornia
import torch
from torch import nn

__all__ = ["to_dped_gray", "discriminator_loss", "texture_loss", "TextureLoss"]

# TF's tf.image.rgb_to_grayscale weights, which DPED's discriminator sees.
_TF_GRAY = (0.2989, 0.5870, 0.1140)


def to_dped_gray(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) gray with TF's weights (0.2989, 0.5870, 0.1140)."""
    return kornia.color.rgb_to_grayscale(image, rgb_weights=torch.tensor(_TF_GRAY, device=image.device, dtype=image.dtype))


def discriminator_loss(probs: torch.Tensor, is_dslr: torch.Tensor) -> torch.Tensor:
    """DPED's discriminator cross-entropy, summed over the batch.

    ``-Σ target · log(clip(probs, 1e-10, 1))`` with ``target = [is_dslr, 1 - is_dslr]``.

    Args:
        probs: (B, 2) softmax output ``[p_dslr, p_enhanced]``.
        is_dslr: (B,) 1 where the patch came from the DSLR, 0 where it was enhanced.

    Example:
        >>> p = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
        >>> round(float(discriminator_loss(p, torch.tensor([1.0, 0.0]))), 4)  # 2 · ln 2
        1.3863
    """
    if probs.ndim != 2 or probs.shape[1] != 2 or is_dslr.shape != probs.shape[:1]:
        raise ValueError(
            f"discriminator_loss expects probs (B, 2) and is_dslr (B,), got {tuple(probs.shape)} and {tuple(is_dslr.shape)}"
        )
    target = torch.stack([is_dslr, 1 - is_dslr], dim=1).to(probs.dtype)
    return -(target * probs.clamp(1e-10, 1.0).log()).sum()


def texture_loss(probs_enhanced: torch.Tensor) -> torch.Tensor:
    """Generator's texture loss: minus the discriminator's loss on enhanced patches.

    DPED feeds only enhanced patches (``adv_ = 0``) and minimises ``-loss_discrim``,
    i.e. it pushes the discriminator to misclassify them. Summed over the batch.

    Args:
        probs_enhanced: (B, 2) discriminator output on enhanced patches.
    """
    return -discriminator_loss(probs_enhanced, torch.zeros_like(probs_enhanced[:, 0]))


class TextureLoss(nn.Module):
    """Module form of :func:`texture_loss`.

    Args:
        weight: the loss weight in the generator objective (1 in DPED).
    """

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, probs_enhanced: torch.Tensor) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return texture_loss(probs_enhanced)
