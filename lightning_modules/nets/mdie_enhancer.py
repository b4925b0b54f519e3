"""MDIE at inference: decompose, translate the intrinsics towards high quality, recompose."""

from typing import Literal

import torch
from torch import nn

__all__ = ["MDIEEnhancer", "InferenceMode", "high_quality_condition", "NUM_ATTRIBUTES"]

#: Attributes of the label vector, in order: colour, texture, noise quality.
NUM_ATTRIBUTES = 3
InferenceMode = Literal["all_high", "sequential"]


def high_quality_condition(batch: int, attributes: tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """c̃ = [c, m] asking for high quality in ``attributes``: c and m are 1 there, 0 elsewhere."""
    c = torch.zeros(batch, NUM_ATTRIBUTES, device=device, dtype=dtype)
    c[:, list(attributes)] = 1
    return torch.cat([c, c], dim=1)


class MDIEEnhancer(nn.Module):
    """image → F → [A, S] → G(·, c̃ high) → [A', S'] → F' → enhanced image.

    Modes (DESIGN.md sec. 1): ``all_high`` asks for every attribute high at once with the
    mask all ones (the thesis); ``sequential`` makes three passes of G, one attribute
    each (colour, texture, noise), each with its own one-hot mask, as in training.

    Args:
        decomposer: F, image → (albedo, shading).
        generator: G, ([A, S], c̃) → [A', S'].
        composer: F', (albedo, shading) → image.
        mode: ``all_high`` or ``sequential``.
    """

    def __init__(self, decomposer: nn.Module, generator: nn.Module, composer: nn.Module, mode: InferenceMode = "all_high"):
        super().__init__()
        if mode not in ("all_high", "sequential"):
            raise ValueError(f"MDIEEnhancer: mode must be all_high or sequential, got {mode!r}")
        self.decomposer, self.generator, self.composer, self.mode = decomposer, generator, composer, mode
        # Tiling (mobile2dslr.tiling): strided nets need tiles on their stride grid, and a
        # halo covering the reach of the three nets in practice (tests/test_tiling.py bounds the difference).
        self.size_multiple = max(getattr(decomposer, "size_multiple", 1), getattr(composer, "size_multiple", 1), getattr(generator, "size_multiple", 1))
        self.tile_halo = 4 * self.size_multiple

    def passes(self) -> list[tuple[int, ...]]:
        """The attributes asked for high in each pass of G."""
        return [tuple(range(NUM_ATTRIBUTES))] if self.mode == "all_high" else [(i,) for i in range(NUM_ATTRIBUTES)]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance (B, 3, H, W) RGB in [0, 1]; the output is in (0, 1)."""
        albedo, shading = self.decomposer(image)
        intrinsics = torch.cat([albedo, shading], dim=1)
        for attributes in self.passes():
            condition = high_quality_condition(image.shape[0], attributes, image.device, intrinsics.dtype)
            intrinsics = self.generator(intrinsics, condition)
        return self.composer(intrinsics[:, :3], intrinsics[:, 3:])
