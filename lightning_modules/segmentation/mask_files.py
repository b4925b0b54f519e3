"""Precomputed label maps read from PNG files (e.g. ground truth or an external segmenter)."""

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mobile2dslr.errors import UserError

from .ade20k import ADE20K_LABELS, DEFAULT_ADE20K_GROUPS
from .base import Segmenter

__all__ = ["MaskFiles"]

# A mask whose aspect ratio differs more than this from its image belongs to another image.
_ASPECT_TOLERANCE = 0.02


class MaskFiles(Segmenter):
    """Reads one label-index PNG per image, ADE20K convention (pixel value = class, 0 = other).

    The mask of an image named ``name`` is ``<folder>/<Path(name).stem><suffix>``. A mask
    of another size but the same aspect ratio (within 2%, e.g. computed on a downscaled
    copy) is resized to the image with nearest-neighbour sampling, which keeps labels
    valid; a different aspect ratio means a wrong file and is an error.

    Args:
        folder: The folder holding the masks.
        suffix: Appended to the image's stem to name its mask.

    Raises:
        UserError: (when segmenting) a mask is missing, unreadable, not single-channel,
            has labels beyond 150, or does not fit its image.
    """

    label_names = ADE20K_LABELS
    default_groups = DEFAULT_ADE20K_GROUPS

    def __init__(self, folder: str, suffix: str = ".png"):
        super().__init__()
        self.folder = str(folder)
        self.suffix = suffix

    def extra_repr(self) -> str:
        return f"folder={self.folder!r}, suffix={self.suffix!r}"

    def mask_path(self, name: str) -> Path:
        """The mask file of the image named ``name`` (a file name or path)."""
        return Path(self.folder) / f"{Path(name).stem}{self.suffix}"

    def segment(self, image: torch.Tensor, names: Optional[Sequence[str]]) -> torch.Tensor:
        if names is None:
            raise ValueError("MaskFiles needs the images' names to find their masks (pass names=...)")
        height, width = image.shape[-2:]
        return torch.stack([self._read(self.mask_path(name), height, width) for name in names])

    def _read(self, path: Path, height: int, width: int) -> torch.Tensor:
        try:
            with Image.open(path) as file:
                if file.mode not in ("L", "P", "I", "I;16", "I;16B"):
                    raise UserError(f"{path}: mask is a {file.mode} image; expected a single-channel label-index PNG")
                labels = np.asarray(file).astype(np.int64)
        except FileNotFoundError:
            raise UserError(f"{path}: mask file not found") from None
        except UserError:
            raise
        except Exception as error:  # Pillow raises many types for bad files
            reason = " ".join(str(error).split()) or type(error).__name__
            raise UserError(f"{path}: cannot read mask ({reason})") from None
        if labels.max(initial=0) >= len(self.label_names) or labels.min(initial=0) < 0:
            raise UserError(f"{path}: mask has label {labels.max()}; ADE20K labels are 0..{len(self.label_names) - 1}")
        tensor = torch.from_numpy(labels)
        if tensor.shape != (height, width):
            mask_h, mask_w = tensor.shape
            if abs(mask_w / mask_h - width / height) > _ASPECT_TOLERANCE * width / height:
                raise UserError(f"{path}: mask is {mask_w}x{mask_h}, its image {width}x{height} (another aspect ratio)")
            # nearest-exact samples pixel centres, so a 2x mask maps exactly onto its image.
            tensor = F.interpolate(tensor[None, None].float(), (height, width), mode="nearest-exact")[0, 0].long()
        return tensor
