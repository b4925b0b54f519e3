"""Intrinsic-image losses: scale-invariant MSE, local MSE, and MDIE's reconstruction loss.

Albedo and shading are only defined up to a scale (I = A·S = (kA)·(S/k)), so predictions
are scored after the least-squares scale that best fits the target: si-MSE (Grosse et al.
2009; Narihira et al. 2015) over whole images and LMSE over local windows, as in the MPI
Sintel intrinsics literature.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "si_mse", "lmse", "reconstruction_terms",
    "ScaleInvariantMSE", "IntrinsicReconstructionLoss",
]

_EPS = 1e-12


def _check(name: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.ndim != 4 or prediction.shape != target.shape:
        raise ValueError(
            f"{name} expects two (B, C, H, W) tensors of one shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )


def si_mse(prediction: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Scale-invariant MSE: ``mean((T − α·P)²)`` with the per-image ``α = <P, T> / <P, P>``.

    One α per image over all its channels (a global scale of albedo or shading), the mean
    over the image's (masked) values, then the mean over the batch. Invariant to any
    non-zero scaling of the prediction.

    Args:
        prediction: (B, C, H, W).
        target: (B, C, H, W).
        mask: optional (B, 1 or C, H, W) weights in {0, 1}: pixels to score.

    Example:
        >>> t = torch.rand(2, 3, 8, 8)
        >>> float(si_mse(3 * t, t)) < 1e-12
        True
    """
    _check("si_mse", prediction, target)
    weight = torch.ones_like(target) if mask is None else mask.to(target.dtype).expand_as(target)
    p, t = (prediction * weight).flatten(1), (target * weight).flatten(1)
    alpha = (p * t).sum(1) / (p * p).sum(1).clamp_min(_EPS)
    error = (t - alpha[:, None] * p).pow(2).sum(1) / weight.flatten(1).sum(1).clamp_min(1)
    return error.mean()


def lmse(prediction: torch.Tensor, target: torch.Tensor, window: Optional[int] = None, fraction: float = 0.1) -> torch.Tensor:
    """Local MSE (Grosse et al. 2009): scale-invariant errors of overlapping windows, normalised.

    ``Σ_w min_α ||T_w − α·P_w||² / Σ_w ||T_w||²`` over square windows of side ``window``
    (default: ``fraction`` of the longer image side, as the Sintel evaluations use) moved
    by half a window; an all-zero prediction scores 1. Mean over the batch.

    Args:
        prediction: (B, C, H, W).
        target: (B, C, H, W).
        window: window side in pixels (default from ``fraction``).
        fraction: window side as a fraction of max(H, W) when ``window`` is None.

    Example:
        >>> t = torch.rand(1, 3, 40, 40)
        >>> round(float(lmse(torch.zeros_like(t), t)), 6), float(lmse(2 * t, t)) < 1e-9
        (1.0, True)
    """
    _check("lmse", prediction, target)
    side = window or max(2, round(fraction * max(prediction.shape[-2:])))
    side = min(side, *prediction.shape[-2:])
    stride = max(1, side // 2)
    p = F.unfold(prediction.double(), side, stride=stride)  # (B, C·side², windows)
    t = F.unfold(target.double(), side, stride=stride)
    pt, pp, tt = (p * t).sum(1), (p * p).sum(1), (t * t).sum(1)
    error = (tt - pt.pow(2) / pp.clamp_min(_EPS)).clamp_min(0)  # min over α of ||t − αp||²
    return (error.sum(1) / tt.sum(1).clamp_min(_EPS)).mean().to(prediction.dtype)


def reconstruction_terms(
    lq: torch.Tensor, lq_reconstruction: torch.Tensor, hq: torch.Tensor, hq_reconstruction: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MDIE's two reconstruction terms: ``‖I_LQ − F'(A_LQ, S_LQ)‖₁`` and ``‖I_HQ − F'(A_HQ, S_HQ)‖²₂``.

    Both are means over pixels (of images in [0, 1]); an empty side (batch 0) gives 0.

    Returns:
        The L1 term of the low-quality images and the squared-L2 term of the high-quality ones.
    """
    l1 = F.l1_loss(lq_reconstruction, lq) if lq.numel() else lq.new_zeros(())
    l2 = F.mse_loss(hq_reconstruction, hq) if hq.numel() else hq.new_zeros(())
    return l1, l2


class ScaleInvariantMSE(nn.Module):
    """Module form of :func:`si_mse`.

    Args:
        weight: weight of the term in the objective.
    """

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The unweighted loss."""
        return si_mse(prediction, target)


class IntrinsicReconstructionLoss(nn.Module):
    """``Lrec = α·‖I_LQ − F'(A_LQ, S_LQ)‖₁ + β·‖I_HQ − F'(A_HQ, S_HQ)‖²₂`` (thesis sec. 3.2.3).

    Args:
        alpha: weight of the low-quality (L1) term.
        beta: weight of the high-quality (squared L2) term.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, lq, lq_reconstruction, hq, hq_reconstruction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum and the unweighted terms ``{"rec_lq_l1", "rec_hq_l2"}``."""
        l1, l2 = reconstruction_terms(lq, lq_reconstruction, hq, hq_reconstruction)
        return self.alpha * l1 + self.beta * l2, {"rec_lq_l1": l1, "rec_hq_l2": l2}
