"""Offline, model-free fallback: superpixels labelled by their nearest fixed colour prototype.

Region-aware style transfer matches regions of the output with regions of a style
reference, so both images need ONE label space. Clustering each image on its own
(k-means) would give labels that mean different things per image; fixed CIELAB
prototypes ("sky-blue", "green", ...) mean the same everywhere. SLIC superpixels make the
regions spatially coherent: a superpixel's mean colour picks its prototype.
"""

import logging
from typing import Mapping, Optional, Sequence

import kornia
import torch
import torch.nn.functional as F
from skimage.segmentation import slic

from mobile2dslr.errors import UserError

from .base import Segmenter

__all__ = ["DEFAULT_PROTOTYPES", "ColorClusters", "default_segmenter"]

log = logging.getLogger(__name__)

#: CIELAB (L in [0, 100], a, b) prototypes, placed from the colours of sky, foliage,
#: skin/brick, soil and grey surfaces in the DPED and Urban100 photos.
DEFAULT_PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "dark": (8.0, 0.0, 0.0),
    "neutral-dark": (28.0, 0.0, 0.0),
    "neutral-mid": (50.0, 0.0, 0.0),
    "neutral-light": (72.0, 0.0, 0.0),
    "bright-neutral": (92.0, 0.0, 0.0),
    "sky-blue": (62.0, -4.0, -28.0),
    "deep-blue": (32.0, 8.0, -38.0),
    "green": (45.0, -30.0, 30.0),
    "brown": (32.0, 10.0, 22.0),
    "warm": (60.0, 18.0, 30.0),
    "red": (42.0, 55.0, 35.0),
    "yellow": (80.0, 0.0, 70.0),
}


class ColorClusters(Segmenter):
    """Labels SLIC superpixels with the nearest of fixed CIELAB colour prototypes.

    Deterministic, needs no weights, and gives every image the same label space (the
    prototype names); there are no default groups, each prototype is a region.

    Args:
        prototypes: Label name → CIELAB (L, a, b) centre; None for
            :data:`DEFAULT_PROTOTYPES`.
        superpixels: Approximate number of SLIC superpixels per image; 0 labels single
            pixels (at the working size).
        compactness: SLIC's colour/space trade-off (higher: squarer superpixels).
        work_size: Long side the image is downscaled to for clustering; labels are
            upsampled (nearest) to the full size.
        lightness_weight: Weight of ΔL against Δa, Δb in the distance; below 1 so that
            hue, not shading, decides (a shadowed sky stays "sky-blue").
    """

    default_groups = None

    def __init__(
        self,
        prototypes: Optional[Mapping[str, Sequence[float]]] = None,
        superpixels: int = 300,
        compactness: float = 10.0,
        work_size: int = 256,
        lightness_weight: float = 0.5,
    ):
        super().__init__()
        prototypes = DEFAULT_PROTOTYPES if prototypes is None else prototypes
        if len(prototypes) < 2 or any(len(tuple(lab)) != 3 for lab in prototypes.values()):
            raise UserError(f"ColorClusters: prototypes must map 2+ names to (L, a, b) triples, got {dict(prototypes)}")
        if superpixels < 0 or work_size < 8 or lightness_weight < 0:
            raise UserError("ColorClusters: need superpixels >= 0, work_size >= 8 and lightness_weight >= 0")
        self.label_names = tuple(prototypes)
        self.superpixels = superpixels
        self.compactness = compactness
        self.work_size = work_size
        self.lightness_weight = lightness_weight
        self.register_buffer(
            "centres", torch.tensor([list(map(float, lab)) for lab in prototypes.values()]), persistent=False
        )

    def extra_repr(self) -> str:
        return f"labels={len(self.label_names)}, superpixels={self.superpixels}, work_size={self.work_size}"

    def segment(self, image: torch.Tensor, names: Optional[Sequence[str]]) -> torch.Tensor:
        return torch.stack([self._segment_one(one) for one in image.float().clamp(0, 1)])

    def _segment_one(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        scale = min(1.0, self.work_size / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = F.interpolate(image[None], size, mode="area")[0] if scale < 1 else image
        lab = kornia.color.rgb_to_lab(small).flatten(1).T  # (h*w, 3)
        if self.superpixels:
            # SLIC converts RGB to Lab itself; given Lab it rescales it to [0, 1] first and
            # its compactness then swamps colour (a regular grid).
            segments = slic(
                small.permute(1, 2, 0).cpu().numpy(),
                n_segments=self.superpixels,
                compactness=self.compactness,
                convert2lab=True,
                channel_axis=-1,
                start_label=0,
            )
            segments = torch.from_numpy(segments).flatten().long().to(lab.device)
            count = int(segments.max()) + 1
            sums = lab.new_zeros(count, 3).index_add_(0, segments, lab)
            means = sums / torch.bincount(segments, minlength=count).clamp_min(1).unsqueeze(1)
            labels = self._nearest(means)[segments]
        else:
            labels = self._nearest(lab)
        labels = labels.view(1, 1, *size).float()
        return F.interpolate(labels, (height, width), mode="nearest-exact")[0, 0].long()

    def _nearest(self, lab: torch.Tensor) -> torch.Tensor:
        weight = lab.new_tensor([self.lightness_weight, 1.0, 1.0])
        return torch.cdist(lab * weight, self.centres.to(lab) * weight).argmin(dim=1)


def default_segmenter() -> Segmenter:
    """The segmenter used when none is configured: :class:`ColorClusters`, with a warning."""
    log.warning(
        "no segmentation model given: falling back to colour clusters (ColorClusters), which know colours, not "
        "objects. For ADE20K semantic regions set the `segmenter` argument (phase 2: --model.objective.segmenter) "
        "to lightning_modules.segmentation.DeepLabADE20K with init_args.path "
        "../shared/weights/segmentation/deeplabv3_mnv2_ade20k_513_torchscript.pt"
    )
    return ColorClusters()
