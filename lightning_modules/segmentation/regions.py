"""Label maps → region maps and soft region masks, and label histograms.

A segmenter predicts fine labels (150 ADE20K classes); style transfer and histogram
equalisation work on a few coarse regions (sky, vegetation, ...). :class:`RegionMap`
merges labels into regions once, with a lookup table, and gives the one-hot masks at any
resolution, e.g. that of a VGG layer for masked Gram matrices.
"""

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from mobile2dslr.errors import UserError

__all__ = ["OTHER", "RegionMap", "histogram_overlap", "label_histogram"]

#: Name of the region that collects every label no group lists.
OTHER = "other"


class RegionMap:
    """Merges a segmenter's labels into named regions.

    Args:
        label_names: The segmenter's labels, index = label value (e.g. ``ADE20K_LABELS``).
        groups: Region name → label names it merges, in region order. Labels no group
            lists join a final region ``"other"`` (or the group of that name, when given).
            None: each label is its own region.

    Raises:
        UserError: A group names an unknown label, or a label is in two groups.

    Example:
        >>> regions = RegionMap(("other", "sky", "tree", "grass"), {"sky": ["sky"], "green": ["tree", "grass"]})
        >>> regions.names
        ('sky', 'green', 'other')
        >>> regions(torch.tensor([[[0, 1, 2, 3]]])).tolist()
        [[[2, 0, 1, 1]]]
    """

    def __init__(self, label_names: Sequence[str], groups: Optional[Mapping[str, Sequence[str]]] = None):
        self.label_names = tuple(label_names)
        if groups is None:
            self.names = self.label_names
            self.lut = torch.arange(len(self.label_names))
            return
        index = {name: i for i, name in enumerate(self.label_names)}
        lut = torch.full((len(self.label_names),), -1, dtype=torch.long)
        for region, (group, members) in enumerate(groups.items()):
            if isinstance(members, str):  # a YAML scalar instead of a list: one label
                members = [members]
            for name in members:
                if name not in index:
                    valid = ", ".join(self.label_names)
                    raise UserError(f"region group {group!r}: unknown label {name!r}; valid labels: {valid}")
                if lut[index[name]] >= 0:
                    raise UserError(f"region group {group!r}: label {name!r} is already in another group")
                lut[index[name]] = region
        names = list(groups)
        if (lut < 0).any():
            if OTHER not in names:
                names.append(OTHER)
            lut[lut < 0] = names.index(OTHER)
        self.names = tuple(names)
        self.lut = lut

    @property
    def num_regions(self) -> int:
        """Number of regions R."""
        return len(self.names)

    def __repr__(self) -> str:
        return f"RegionMap({len(self.label_names)} labels → {self.num_regions} regions: {', '.join(self.names)})"

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        """Region index of each label: LongTensor of the same shape as ``labels`` (B, H, W)."""
        if labels.dtype != torch.long:
            labels = labels.long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.label_names)):
            raise ValueError(f"labels must be in [0, {len(self.label_names)}), got [{labels.min()}, {labels.max()}]")
        return self.lut.to(labels.device)[labels]

    def masks(self, labels: torch.Tensor, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """One-hot region masks, optionally resized with area interpolation.

        Area interpolation averages the one-hot maps, so at a coarse (feature)
        resolution each cell holds the fraction of its pixels in each region, and the
        masks still sum to 1 at every position.

        Args:
            labels: Label map, LongTensor (B, H, W).
            size: Output (h, w); None keeps (H, W).

        Returns:
            FloatTensor (B, R, h, w) in [0, 1].
        """
        regions = self(labels)
        batch, height, width = regions.shape
        size = (height, width) if size is None else tuple(size)
        out = regions.new_zeros((batch, self.num_regions, *size), dtype=torch.float32)
        # One region at a time: a full-size (B, R, H, W) one-hot would need R float maps.
        for region in regions.unique().tolist():
            mask = (regions == region).float().unsqueeze(1)
            if size != (height, width):
                mask = F.interpolate(mask, size=size, mode="area")
            out[:, region] = mask[:, 0]
        return out


def label_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Fraction of pixels per label in each image.

    Args:
        labels: Label map, integer tensor (B, H, W) with values in [0, num_classes).
        num_classes: Number of labels C.

    Returns:
        FloatTensor (B, C); each row sums to 1.
    """
    if labels.ndim != 3:
        raise ValueError(f"label_histogram expects (B, H, W) labels, got shape {tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    batch = labels.shape[0]
    # Offset each image's labels by b*C so one bincount counts the whole batch.
    offsets = torch.arange(batch, device=labels.device).view(batch, 1, 1) * num_classes
    counts = torch.bincount((labels + offsets).flatten(), minlength=batch * num_classes)
    counts = counts.view(batch, num_classes).float()
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1)


def histogram_overlap(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """Histogram intersection of every pair of rows: ``sum_c min(h1[n, c], h2[m, c])``.

    For normalised histograms it is 1 for identical label contents and 0 for disjoint
    ones; the style recommender uses it as the semantic similarity of two images.

    Args:
        h1: Histograms (N, C).
        h2: Histograms (M, C).

    Returns:
        Tensor (N, M).
    """
    if h1.ndim != 2 or h2.ndim != 2 or h1.shape[1] != h2.shape[1]:
        raise ValueError(f"histogram_overlap expects (N, C) and (M, C), got {tuple(h1.shape)} and {tuple(h2.shape)}")
    return torch.minimum(h1.unsqueeze(1), h2.unsqueeze(0)).sum(dim=-1)
