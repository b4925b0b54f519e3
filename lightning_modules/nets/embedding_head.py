"""The recommender's trainable head: pooled frozen VGG-16 features → style embedding."""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EmbeddingHead"]


class EmbeddingHead(nn.Module):
    """Two fully connected layers on a pooled VGG-16 descriptor, L2-normalised output.

    The descriptor is L2-normalised first: pooled relu5_3 norms vary with image content
    and contrast, and the ranking should not. The output lies on the unit sphere, so a
    triplet margin means the same whatever the scale of the features (distances in [0, 2]).

    Args:
        in_features: size of the descriptor (512 for VGG-16 relu5_3).
        hidden: width of the hidden layer.
        out_features: size of the embedding.
        dropout: dropout on the hidden layer while training (the galleries are small).

    Example:
        >>> head = EmbeddingHead(512, 64, 16)
        >>> out = head(torch.rand(3, 512))
        >>> tuple(out.shape), torch.allclose(out.norm(dim=1), torch.ones(3))
        ((3, 16), True)
    """

    def __init__(self, in_features: int = 512, hidden: int = 512, out_features: int = 128, dropout: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )

    def forward(self, descriptor: torch.Tensor) -> torch.Tensor:
        """Embed (B, in_features) descriptors as (B, out_features) unit vectors."""
        if descriptor.ndim != 2 or descriptor.shape[1] != self.in_features:
            raise ValueError(f"EmbeddingHead expects (B, {self.in_features}) descriptors, got shape {tuple(descriptor.shape)}")
        return F.normalize(self.layers(F.normalize(descriptor, dim=1)), dim=1)
