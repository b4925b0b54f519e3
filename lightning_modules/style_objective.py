"""The objective of semantic style refinement (MPSE phase 2), shared by both modes.

L = w_c·Lc + w_s·Ls + w_m·Lm + w_tv·TV (DESIGN.md sec. 1, MPSE 3): VGG-19 content loss
against the content image C (the phase-1 output), per-region masked Gram style loss
against the reference R weighted by Λ, the Matting Laplacian of C (photorealism) and TV.
What depends only on C and R (masks, their features, the Laplacians) is computed once
in :meth:`StyleObjective.context`, so the per-step cost is one VGG pass of the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from .losses.content_loss import feature_mse
from .losses.matting_loss import matting_laplacian, matting_loss
from .losses.style_loss import region_grams, region_style_terms, region_weights, style_loss
from .losses.tv_loss import tv_loss
from .nets.vgg import VGG19Features
from .segmentation import RegionMap, Segmenter, default_segmenter

__all__ = ["StyleContext", "StyleObjective", "POOLED_LAYER"]

#: The layer whose global-pooled features feed the Λ head (the thesis: conv5_3).
POOLED_LAYER = "relu5_3"


@dataclass
class StyleContext:
    """What the objective needs about a batch of content images and references."""

    content_features: torch.Tensor  # (B, C, h, w) at the content layer
    reference_features: dict[str, torch.Tensor]  # the pooled layer
    reference_grams: dict[str, torch.Tensor]  # (B, R, C, C) masked Grams of R per style layer
    content_masks: torch.Tensor  # (B, R, H, W) soft region masks of C (stand-in for O's)
    reference_masks: torch.Tensor  # (B, R, H', W')
    area: torch.Tensor  # (B, R) region areas α_r of C, fractions of the image
    laplacians: list[torch.Tensor]  # one sparse (HW, HW) Matting Laplacian per image


class StyleObjective(nn.Module):
    """Content + region-weighted style + matting + TV terms for an output image.

    Region masks come from segmenting the content image C and the reference R into one
    label space, merged into a few regions. The output O keeps C's layout (the content
    and matting terms see to that), so C's masks stand for O's: O is never segmented,
    which keeps the segmentation model out of the training loop.

    Args:
        segmenter: Labels images (default: the unsupervised colour-cluster fallback,
            announced in the log; pass ``DeepLabADE20K`` for ADE20K semantics).
        region_groups: Merges labels into regions (``{"vegetation": ["tree", "grass"]}``);
            ``None`` uses the segmenter's default grouping.
        style_layers: VGG-19 layers of the Gram style loss.
        content_layer: VGG-19 layer of the content loss (DPST: conv4_2).
        content_weight: Weight of Lc (DPST's ratio: 5).
        style_weight: Γ, weight of Ls (100).
        matting_weight: λ, weight of the Matting Laplacian term (1e4).
        tv_weight: Weight of TV (1e-3).
        matting_eps: ε of the Matting Laplacian (Levin et al.: 1e-7).
        matting_radius: Window radius of the Matting Laplacian (1: 3x3 windows).
        vgg_weights: ``imagenet`` (offline), ``random`` (tests only) or a state-dict path.
    """

    def __init__(
        self,
        segmenter: Optional[Segmenter] = None,
        region_groups: Optional[dict[str, list[str]]] = None,
        style_layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        content_layer: str = "relu4_2",
        content_weight: float = 5.0,
        style_weight: float = 100.0,
        matting_weight: float = 1e4,
        tv_weight: float = 1e-3,
        matting_eps: float = 1e-7,
        matting_radius: int = 1,
        vgg_weights: str = "imagenet",
    ) -> None:
        super().__init__()
        self.segmenter = segmenter if segmenter is not None else default_segmenter()
        groups = region_groups if region_groups is not None else self.segmenter.default_groups
        self.regions = RegionMap(self.segmenter.label_names, groups)
        self.style_layers = tuple(style_layers)
        self.content_layer = content_layer
        self.weights = {"content": content_weight, "style": style_weight, "matting": matting_weight, "tv": tv_weight}
        self.matting_eps, self.matting_radius = matting_eps, matting_radius
        layers = dict.fromkeys((*self.style_layers, content_layer, POOLED_LAYER))
        self.vgg = VGG19Features(tuple(layers), weights=vgg_weights)

    @property
    def num_regions(self) -> int:
        """Regions after merging: the Λ head's output size per layer."""
        return self.regions.num_regions

    @torch.no_grad()
    def context(
        self,
        content: torch.Tensor,
        reference: torch.Tensor,
        names: Optional[Sequence[str]] = None,
        reference_names: Optional[Sequence[str]] = None,
    ) -> StyleContext:
        """Precompute everything that depends only on C (B, 3, H, W) and R (B, 3, H', W').

        ``names``/``reference_names`` identify the images for segmenters that read mask files.
        """
        content = content.clamp(0, 1)
        reference = reference.clamp(0, 1)
        content_masks = self.regions.masks(self.segmenter(content, names))
        reference_masks = self.regions.masks(self.segmenter(reference, reference_names))
        guides = content.float().permute(0, 2, 3, 1).cpu().double().numpy()
        laplacians = [
            matting_laplacian(guide, eps=self.matting_eps, radius=self.matting_radius).to(content.device) for guide in guides
        ]
        reference_features = self.vgg(reference)
        reference_masks = reference_masks.to(content.device)
        return StyleContext(
            content_features=self.vgg(content)[self.content_layer],
            reference_features={POOLED_LAYER: reference_features[POOLED_LAYER]},
            reference_grams=region_grams({name: reference_features[name] for name in self.style_layers}, reference_masks),
            content_masks=content_masks.to(content.device),
            reference_masks=reference_masks,
            area=content_masks.mean(dim=(2, 3)).to(content.device),
            laplacians=laplacians,
        )

    def forward(self, output: torch.Tensor, context: StyleContext, lambda_head: nn.Module) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Unweighted terms for ``output`` (B, 3, H, W), and Λ (B, L, R).

        Returns:
            ``{"content", "style", "matting", "tv"}`` raw values (multiply by
            ``self.weights`` for the objective; see :meth:`total`) and Λ.
        """
        features = self.vgg(output)
        out_style = {name: features[name] for name in self.style_layers}
        terms, valid = region_style_terms(
            out_style, None, context.content_masks, context.reference_masks, ref_grams=context.reference_grams
        )
        weights = region_weights(lambda_head(features[POOLED_LAYER], context.reference_features[POOLED_LAYER]), context.area, valid)
        raw = {
            "content": feature_mse(features[self.content_layer], context.content_features),
            "style": style_loss(terms, weights),
            "matting": matting_loss(output, context.laplacians),
            "tv": tv_loss(output),
        }
        return raw, weights

    def total(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of the raw terms."""
        return sum(self.weights[name] * value for name, value in raw.items())
