"""Region-aware Gram style loss of MPSE phase 2 (DPST's masked Gram, weighted by Λ).

Deep Photo Style Transfer (Luan et al. 2017) matches Gram matrices region by region: the
features of the output O and of the reference R are multiplied by soft segmentation masks
of the same semantic class, and the masked Grams are compared layer by layer. MPSE weights
every (layer l, region r) term by Λ[l, r], a softmax over the regions present in both O
and R (see :func:`region_weights` and :class:`~lightning_modules.nets.LambdaHead`).
"""

from collections.abc import Mapping
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["masked_gram", "region_areas", "region_grams", "region_style_terms", "region_weights", "style_loss", "RegionStyleLoss"]


def _masked_grams(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masked Grams of features (B, C, h, w) for masks (B, R, h, w): (B, R, C, C).

    Each region's Gram only visits the pixels where its mask is non-zero: segmentation
    masks barely overlap, so the cost is about that of one Gram, not R of them, and no
    (B, R, C, h, w) product is ever held in memory.
    """
    _, c, h, w = features.shape
    flat = features.flatten(2)  # (B, C, hw)
    weights = masks.flatten(2).to(features.dtype)  # (B, R, hw)
    grams = []
    for sample, sample_weights in zip(flat, weights):
        for mask in sample_weights:
            where = mask.nonzero().squeeze(1)
            masked = sample[:, where] * mask[where]
            grams.append(masked @ masked.T)
    gram = torch.stack(grams).view(*weights.shape[:2], c, c)
    mean = weights.mean(-1)  # (B, R)
    mean = torch.where(mean > 0, mean, torch.ones_like(mean))  # empty mask: Gram is 0 anyway
    return gram / (c * h * w * mean)[..., None, None]


def masked_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DPST's masked Gram matrix, normalised by the mask's area.

    With F the features flattened to (C, h·w) and M the mask flattened to (h·w,),

        G = (F⊙M)(F⊙M)ᵀ / (C·h·w · mean(M)),

    the plain normalised Gram FFᵀ/(C·h·w) for an all-ones mask. A mask with mean(M) = 0
    is not normalised by its area (G = 0 then, for non-negative masks).

    Args:
        features: (B, C, h, w).
        mask: (B, h, w) or (B, 1, h, w), soft weights in [0, 1] at the feature size.

    Returns:
        (B, C, C).

    Example:
        >>> f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # B=1, C=2, h=1, w=2
        >>> masked_gram(f, torch.tensor([[[1.0, 0.0]]])).tolist()  # (F⊙M)(F⊙M)ᵀ / (2·1·2·0.5)
        [[[0.5, 1.5], [1.5, 4.5]]]
    """
    if features.ndim != 4:
        raise ValueError(f"masked_gram expects (B, C, h, w) features, got shape {tuple(features.shape)}")
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    b, _, h, w = features.shape
    if tuple(mask.shape) != (b, h, w):
        raise ValueError(
            f"masked_gram expects a ({b}, {h}, {w}) or ({b}, 1, {h}, {w}) mask for features of shape "
            f"{tuple(features.shape)}, got {tuple(mask.shape)}"
        )
    return _masked_grams(features, mask.unsqueeze(1).to(features.dtype))[:, 0]


def region_areas(masks: torch.Tensor) -> torch.Tensor:
    """Fraction of the image each region covers: masks (B, R, H, W) → (B, R) in [0, 1].

    Example:
        >>> region_areas(torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])).tolist()
        [[0.5, 0.5]]
    """
    if masks.ndim != 4:
        raise ValueError(f"region_areas expects (B, R, H, W) masks, got shape {tuple(masks.shape)}")
    return masks.flatten(2).mean(-1)


def region_style_terms(
    out_feats: Mapping[str, torch.Tensor],
    ref_feats: Optional[Mapping[str, torch.Tensor]],
    out_masks: torch.Tensor,
    ref_masks: torch.Tensor,
    min_area: float = 1e-3,
    ref_grams: Optional[Mapping[str, torch.Tensor]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer, per-region style terms mean_{C×C} (G_O − G_R)² and the regions' validity.

    For every layer l (in ``out_feats``'s order) and region r, the masks are resized to the
    layer's feature size by area averaging (they stay soft), and G_O, G_R are the
    :func:`masked_gram` of O's and R's features. O and R may have different sizes: each
    uses its own masks. A region is valid where it covers more than ``min_area`` of the
    image in both O and R (DPST skips classes missing on either side); the terms of
    invalid regions are set to 0.

    Args:
        out_feats: layer name → (B, C_l, h_l, w_l) features of the output O.
        ref_feats: the same layers for the reference R, (B, C_l, h'_l, w'_l); may be None
            when ``ref_grams`` is given.
        out_masks: (B, R, H, W) soft region masks of O (at image resolution).
        ref_masks: (B, R, H', W') soft masks of R, the same regions in the same order.
        min_area: smallest mean mask value (fraction of pixels) for a region to count.
        ref_grams: R's masked Grams per layer, (B, R, C_l, C_l), from :func:`region_grams`:
            a fixed reference's Grams computed once instead of at every call.

    Returns:
        ``terms`` (B, L, R) and ``valid`` (B, R), bool.

    Example:
        >>> feats = {"relu1_1": torch.rand(2, 4, 8, 8)}
        >>> masks = torch.ones(2, 1, 16, 16)
        >>> terms, valid = region_style_terms(feats, feats, masks, masks)
        >>> terms.tolist(), valid.tolist()
        ([[[0.0]], [[0.0]]], [[True], [True]])
    """
    reference = ref_grams if ref_grams is not None else ref_feats
    if reference is None or list(out_feats) != list(reference) or not out_feats:
        raise ValueError(
            f"region_style_terms expects the same layers for O and R, got {list(out_feats)} and "
            f"{None if reference is None else list(reference)}"
        )
    if out_masks.ndim != 4 or ref_masks.ndim != 4 or out_masks.shape[:2] != ref_masks.shape[:2]:
        raise ValueError(
            "region_style_terms expects (B, R, H, W) masks with the same B and R for O and R, "
            f"got {tuple(out_masks.shape)} and {tuple(ref_masks.shape)}"
        )
    batch = out_masks.shape[0]
    valid = (region_areas(out_masks) > min_area) & (region_areas(ref_masks) > min_area)
    terms = []
    for name, out_f in out_feats.items():
        ref_f = reference[name]
        ref_channels = ref_f.shape[-1] if ref_grams is not None else ref_f.shape[1]
        if out_f.ndim != 4 or ref_f.ndim != 4 or out_f.shape[1] != ref_channels or (out_f.shape[0], ref_f.shape[0]) != (batch, batch):
            raise ValueError(
                f"region_style_terms: layer {name!r} needs (B, C, h, w) features with B={batch} and one C for "
                f"O and R, got {tuple(out_f.shape)} and {tuple(ref_f.shape)}"
            )
        ref_gram = ref_f if ref_grams is not None else _layer_grams(ref_f, ref_masks)
        diff = _layer_grams(out_f, out_masks) - ref_gram  # (B, R, C, C)
        terms.append(diff.pow(2).mean((-1, -2)))
    terms = torch.stack(terms, dim=1)  # (B, L, R)
    return terms * valid.unsqueeze(1).to(terms.dtype), valid


def _layer_grams(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    # Masks at image resolution → the layer's size by area averaging (they stay soft).
    return _masked_grams(features, F.adaptive_avg_pool2d(masks.to(features.dtype), features.shape[-2:]))


def region_grams(feats: Mapping[str, torch.Tensor], masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Masked Grams (B, R, C_l, C_l) of every layer, for soft masks (B, R, H, W) at image size.

    Example:
        >>> grams = region_grams({"relu1_1": torch.ones(1, 2, 4, 4)}, torch.ones(1, 3, 8, 8))
        >>> tuple(grams["relu1_1"].shape), round(float(grams["relu1_1"][0, 0, 0, 0]), 4)  # 16 / (2·16·1)
        ((1, 3, 2, 2), 0.5)
    """
    return {name: _layer_grams(features, masks) for name, features in feats.items()}


def region_weights(logits: torch.Tensor, area: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Λ[b, l, r]: softmax over the valid regions r of area[b, r] · logits[b, l, r].

    Invalid regions get weight 0, so Λ sums to 1 over regions for every layer of a sample
    with at least one valid region; a sample without valid regions gets all zeros. With
    constant logits c, Λ ∝ exp(c · area) over the valid regions.

    Args:
        logits: (B, L, R), e.g. the output of :class:`~lightning_modules.nets.LambdaHead`.
        area: (B, R), region areas in [0, 1] (:func:`region_areas`).
        valid: (B, R) bool (from :func:`region_style_terms`).

    Example:
        >>> logits = torch.zeros(1, 2, 3)
        >>> region_weights(logits, torch.ones(1, 3), torch.tensor([[True, True, False]])).tolist()
        [[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]]
    """
    if logits.ndim != 3 or tuple(area.shape) != (logits.shape[0], logits.shape[2]) or area.shape != valid.shape:
        raise ValueError(
            "region_weights expects logits (B, L, R), area (B, R) and valid (B, R), got "
            f"{tuple(logits.shape)}, {tuple(area.shape)} and {tuple(valid.shape)}"
        )
    scores = area.unsqueeze(1).to(logits.dtype) * logits
    keep = valid.unsqueeze(1).expand_as(scores)
    # A finite fill (not -inf) keeps an all-invalid sample free of NaN in forward and backward.
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * keep.to(scores.dtype)


def style_loss(terms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of Σ_l Σ_r Λ[l, r] · terms[l, r].

    Args:
        terms: (B, L, R) from :func:`region_style_terms`.
        weights: (B, L, R) Λ from :func:`region_weights`.

    Example:
        >>> float(style_loss(torch.ones(2, 3, 4), torch.full((2, 3, 4), 0.25)))
        3.0
    """
    if terms.ndim != 3 or terms.shape != weights.shape:
        raise ValueError(
            f"style_loss expects terms and weights of one (B, L, R) shape, got {tuple(terms.shape)} and "
            f"{tuple(weights.shape)}"
        )
    return (weights * terms).sum((1, 2)).mean()


class RegionStyleLoss(nn.Module):
    """Module form of the region-weighted style loss Ls (:func:`style_loss` of Λ and the terms).

    Args:
        weight: the loss weight Γ in the objective (100, DPST's style : content = 100 : 5).
        min_area: a region counts where it covers more than this fraction of O and of R.
    """

    def __init__(self, weight: float = 100.0, min_area: float = 1e-3):
        super().__init__()
        self.weight = weight
        self.min_area = min_area

    def forward(
        self,
        out_feats: Mapping[str, torch.Tensor],
        ref_feats: Mapping[str, torch.Tensor],
        out_masks: torch.Tensor,
        ref_masks: torch.Tensor,
        logits: torch.Tensor,
        area: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The unweighted loss (multiply by ``self.weight`` for the objective).

        Args:
            out_feats, ref_feats, out_masks, ref_masks: as in :func:`region_style_terms`.
            logits: (B, L, R) Λ-head logits, L = number of layers in ``out_feats``.
            area: (B, R) region areas α_r; defaults to the areas of ``out_masks``.
            return_weights: also return Λ (B, L, R), e.g. for logging.

        Returns:
            The scalar loss, or ``(loss, Λ)`` when ``return_weights`` is set.
        """
        terms, valid = region_style_terms(out_feats, ref_feats, out_masks, ref_masks, self.min_area)
        if logits.shape != terms.shape:
            raise ValueError(
                f"RegionStyleLoss expects (B, L, R) = {tuple(terms.shape)} logits, got {tuple(logits.shape)}"
            )
        weights = region_weights(logits, region_areas(out_masks) if area is None else area, valid)
        loss = style_loss(terms, weights)
        return (loss, weights) if return_weights else loss
