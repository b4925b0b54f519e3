"""Semantic segmentation for region-aware style transfer and per-region post-processing.

Plain ``nn.Module``s: a :class:`Segmenter` maps RGB images in [0, 1] to label maps, and a
:class:`RegionMap` merges labels into a few regions (sky, vegetation, ...) and gives
their masks at any resolution. Segmenters are configured by ``class_path``:

- :class:`DeepLabADE20K`: DeepLabV3+ MobileNetV2, 150 ADE20K classes (TorchScript or LiteRT).
- :class:`MaskFiles`: precomputed ADE20K label-index PNGs.
- :class:`ColorClusters`: model-free fallback (fixed colour prototypes on superpixels),
  returned with a warning by :func:`default_segmenter`.
"""

from .ade20k import ADE20K_LABELS, DEFAULT_ADE20K_GROUPS
from .base import Segmenter
from .color_clusters import DEFAULT_PROTOTYPES, ColorClusters, default_segmenter
from .deeplab import DeepLabADE20K
from .mask_files import MaskFiles
from .regions import RegionMap, histogram_overlap, label_histogram

__all__ = [
    "ADE20K_LABELS",
    "DEFAULT_ADE20K_GROUPS",
    "DEFAULT_PROTOTYPES",
    "ColorClusters",
    "DeepLabADE20K",
    "MaskFiles",
    "RegionMap",
    "Segmenter",
    "default_segmenter",
    "histogram_overlap",
    "label_histogram",
]
