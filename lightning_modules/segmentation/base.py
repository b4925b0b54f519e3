"""The interface every semantic segmenter implements."""

from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .regions import RegionMap

__all__ = ["Segmenter"]


class Segmenter(nn.Module):
    """Maps RGB images to per-pixel label indices; frozen, always in eval mode, no gradients.

    Subclasses set ``label_names`` (index = label value) and ``default_groups`` (the
    region grouping that suits their labels, or None for one region per label) and
    implement :meth:`segment`.
    """

    label_names: tuple[str, ...] = ()
    default_groups: Optional[dict[str, list[str]]] = None

    def __init__(self):
        super().__init__()
        self.eval()

    def train(self, mode: bool = True) -> "Segmenter":
        return super().train(False)  # frozen: always eval

    @property
    def num_labels(self) -> int:
        """Number of labels C; predictions lie in [0, C)."""
        return len(self.label_names)

    def region_map(self, groups: Union[Mapping[str, Sequence[str]], None, str] = "default") -> RegionMap:
        """A :class:`RegionMap` over this segmenter's labels.

        Args:
            groups: ``"default"`` for :attr:`default_groups`, None for one region per
                label, or a region name → label names mapping.
        """
        return RegionMap(self.label_names, self.default_groups if groups == "default" else groups)

    def forward(self, image: torch.Tensor, names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Label map of a batch of images.

        Args:
            image: (B, 3, H, W) RGB in [0, 1].
            names: The images' file names (B of them); only segmenters that read
                per-image files (:class:`MaskFiles`) need them.

        Returns:
            LongTensor (B, H, W) of label indices, on the device of ``image``.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        if names is not None and len(names) != image.shape[0]:
            raise ValueError(f"got {len(names)} names for a batch of {image.shape[0]} images")
        with torch.no_grad():
            labels = self.segment(image.detach(), names)
        return labels.to(device=image.device, dtype=torch.long)

    def segment(self, image: torch.Tensor, names: Optional[Sequence[str]]) -> torch.Tensor:
        """Implementation of :meth:`forward` (called without gradients, inputs checked)."""
        raise NotImplementedError
