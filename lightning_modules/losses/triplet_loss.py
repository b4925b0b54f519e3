"""Triplet margin loss over every (anchor, positive, negative) combination of a query."""

from typing import Optional

import torch
from torch import nn

__all__ = ["triplet_loss", "TripletLoss"]


def triplet_loss(
    anchor: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    margin: float,
    positive_mask: Optional[torch.Tensor] = None,
    negative_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean over all P×N triplets of ``max(0, d(a, p) - d(a, n) + margin)``.

    ``d`` is the Euclidean distance. Each anchor ``a`` (one row of ``anchor``) forms P×N
    triplets with its own positives and negatives; the mean runs over the triplets of
    the whole batch. Masks mark the valid positives/negatives when queries have
    different counts (padding rows are ignored); with no valid triplet the loss is 0
    (still differentiable).

    Args:
        anchor: (B, D) embeddings of the queries.
        positives: (B, P, D) embeddings of each query's positives.
        negatives: (B, N, D) embeddings of each query's negatives.
        margin: the required gap between negative and positive distance.
        positive_mask: optional (B, P) bool, True where a positive is valid.
        negative_mask: optional (B, N) bool, True where a negative is valid.

    Example:
        >>> a = torch.zeros(1, 2)
        >>> p = torch.tensor([[[1.0, 0.0]]])               # d(a, p) = 1
        >>> n = torch.tensor([[[3.0, 0.0], [1.5, 0.0]]])   # d(a, n) = 3 and 1.5
        >>> float(triplet_loss(a, p, n, margin=1.0))      # (max(0, -1) + max(0, 0.5)) / 2
        0.25
    """
    if anchor.ndim != 2 or positives.ndim != 3 or negatives.ndim != 3:
        raise ValueError(
            "triplet_loss expects anchor (B, D), positives (B, P, D), negatives (B, N, D); got "
            f"{tuple(anchor.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
        )
    batch, dim = anchor.shape
    if positives.shape[0] != batch or negatives.shape[0] != batch or positives.shape[2] != dim or negatives.shape[2] != dim:
        raise ValueError(
            f"triplet_loss: batch or feature sizes differ: anchor {tuple(anchor.shape)}, "
            f"positives {tuple(positives.shape)}, negatives {tuple(negatives.shape)}"
        )
    d_pos = torch.cdist(anchor[:, None], positives).squeeze(1)  # (B, P)
    d_neg = torch.cdist(anchor[:, None], negatives).squeeze(1)  # (B, N)
    losses = (d_pos[:, :, None] - d_neg[:, None, :] + margin).clamp_min(0)  # (B, P, N)
    valid = torch.ones_like(losses, dtype=torch.bool)
    if positive_mask is not None:
        valid = valid & positive_mask[:, :, None]
    if negative_mask is not None:
        valid = valid & negative_mask[:, None, :]
    count = valid.sum()
    return (losses * valid).sum() / count.clamp_min(1)


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss`.

    Args:
        margin: the required gap between negative and positive distance (in embedding
            units; the recommender's embeddings are L2-normalised, distances in [0, 2]).
        weight: the loss weight in the objective.
    """

    def __init__(self, margin: float = 0.2, weight: float = 1.0):
        super().__init__()
        self.margin = margin
        self.weight = weight

    def forward(
        self,
        anchor: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
        positive_mask: Optional[torch.Tensor] = None,
        negative_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return triplet_loss(anchor, positives, negatives, self.margin, positive_mask, negative_mask)
