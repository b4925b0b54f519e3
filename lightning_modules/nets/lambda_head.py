"""The Λ head of MPSE phase 2: per-(layer, region) style-weight logits from O and R."""

import torch
from torch import nn

__all__ = ["LambdaHead"]


class LambdaHead(nn.Module):
    """MLP on [GAP(conv5_3(O)), GAP(conv5_3(R))] → logits (B, L, R) for the style weights Λ.

    The logits go to :func:`~lightning_modules.losses.region_weights`, which turns them
    into Λ = softmax over valid regions of area · logits.

    Args:
        num_layers: L, the number of style layers.
        num_regions: R, the number of segmentation regions (classes).
        in_features: size of the concatenated pooled features (2 × 512 for VGG-19 conv5_3).
        hidden: width of the hidden layer.
        init_logit: the (near-)constant value of the logits at initialisation.

    Example:
        >>> head = LambdaHead(num_layers=5, num_regions=3)
        >>> head(torch.rand(2, 512, 7, 7), torch.rand(2, 512, 6, 8)).shape
        torch.Size([2, 5, 3])
    """

    def __init__(
        self, num_layers: int, num_regions: int, in_features: int = 1024, hidden: int = 256, init_logit: float = 1.0
    ):
        super().__init__()
        self.num_layers = num_layers
        self.num_regions = num_regions
        self.in_features = in_features
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_layers * num_regions),
        )
        last = self.mlp[-1]
        # Start with (almost) constant logits, so that Λ starts as DPST-like area-weighted
        # softmax(init_logit · area) instead of random region preferences that the style loss
        # would then have to undo. The weights are small but non-zero so that the first layer
        # gets gradients from the first step (all-zero weights would block them).
        nn.init.normal_(last.weight, std=1e-4)
        nn.init.constant_(last.bias, init_logit)

    def forward(self, out_features: torch.Tensor, ref_features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L, R) from conv5_3 features of O and R.

        Args:
            out_features: (B, C, h, w) feature maps of the output O or already pooled (B, C);
                or, with ``ref_features`` omitted, the concatenation [GAP(O), GAP(R)] (B, in_features).
            ref_features: (B, C, h', w') or (B, C) of the reference R.
        """
        inputs = (out_features,) if ref_features is None else (out_features, ref_features)
        pooled = [f.mean((-2, -1)) if f.ndim == 4 else f for f in inputs]
        if any(p.ndim != 2 for p in pooled) or len({p.shape[0] for p in pooled}) != 1:
            raise ValueError(
                "LambdaHead expects (B, C, h, w) or (B, C) features with one batch size, got "
                f"{[tuple(f.shape) for f in inputs]}"
            )
        x = torch.cat(pooled, dim=1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"LambdaHead expects {self.in_features} pooled features in all (O and R), got {x.shape[1]}"
            )
        return self.mlp(x).view(-1, self.num_layers, self.num_regions)
