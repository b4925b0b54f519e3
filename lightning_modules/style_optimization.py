"""MPSE phase 2, ``optimize`` mode (the thesis): per-image style optimisation.

The output image itself is optimised, starting from the content image C, at a working
resolution (the Matting Laplacian of a 12 MP photo does not fit in memory); the image
and the Λ head are updated alternately. The full-size result carries the low-resolution
colour change over to C through a guided filter (edges come from the full-size C).
"""

from __future__ import annotations

import copy
import math
from typing import Union

import torch
import torch.nn.functional as F
from kornia.filters import guided_blur
from torch import nn
from tqdm.auto import tqdm

from .style_objective import StyleObjective

__all__ = ["optimize_style", "guided_upsample", "resize_long_side"]


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Downscale (B, C, H, W) so that max(H, W) <= ``long_side`` (antialiased); never enlarge."""
    height, width = image.shape[-2:]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


def guided_upsample(content: torch.Tensor, content_small: torch.Tensor, output_small: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Apply the change ``content_small → output_small`` to the full-size ``content``.

    The low-resolution difference is upsampled bilinearly, then filtered with the
    full-size content as the guide, so it follows C's edges instead of the blurry
    low-resolution ones (a guided filter, He et al.; its window spans a few
    low-resolution pixels).

    Args:
        content: (B, 3, H, W) full size.
        content_small: (B, 3, h, w) the content at the working resolution.
        output_small: (B, 3, h, w) the optimised output at the working resolution.
        eps: Regularisation of the guided filter (squared intensity units).
    """
    height, width = content.shape[-2:]
    delta = F.interpolate(output_small - content_small, size=(height, width), mode="bilinear", align_corners=False)
    scale = max(height / content_small.shape[-2], width / content_small.shape[-1])
    if scale <= 1:
        return content + delta
    radius = max(1, math.ceil(2 * scale))
    subsample = max(1, int(scale // 2))  # the fast guided filter: window statistics on a coarser grid
    return content + guided_blur(content, delta, 2 * radius + 1, eps, subsample=subsample)


def optimize_style(
    content: torch.Tensor,
    reference: torch.Tensor,
    objective: StyleObjective,
    lambda_head: nn.Module,
    steps: int = 200,
    lr: float = 0.004,
    lambda_lr: float = 1e-3,
    working_side: int = 768,
    progress: bool = True,
    return_weights: bool = False,
) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Restyle one content image after a reference by optimising the image itself.

    Args:
        content: (1, 3, H, W) the phase-1 output, in [0, 1], any size.
        reference: (1, 3, H', W') the style reference (e.g. the recommender's best).
        objective: The losses and weights (the phase-2 module's ``objective``).
        lambda_head: The Λ head to start from (copied; the phase-2 module's, trained or not).
        steps: Optimisation steps; even steps update the image, odd steps the Λ head.
        lr: Adam learning rate of the image (pixels in [0, 1]; DPST's 1.0 in 0-255 units).
        lambda_lr: Adam learning rate of the Λ head.
        working_side: Long side of the working resolution.
        progress: Show a progress bar.
        return_weights: Also return the final Λ (1, L, R) of the optimised image (phase 3
            uses it for its per-region strength).

    Returns:
        The restyled image (1, 3, H, W) in [0, 1] (and Λ with ``return_weights``).
    """
    if content.ndim != 4 or content.shape[0] != 1 or reference.ndim != 4 or reference.shape[0] != 1:
        raise ValueError(f"optimize_style takes one image at a time, got {tuple(content.shape)} and {tuple(reference.shape)}")
    content = content.clamp(0, 1)
    content_small = resize_long_side(content, working_side)
    context = objective.context(content_small, resize_long_side(reference, working_side))
    head = copy.deepcopy(lambda_head).train()
    output = content_small.clone().requires_grad_(True)
    image_optimizer = torch.optim.Adam([output], lr=lr)
    head_optimizer = torch.optim.Adam(head.parameters(), lr=lambda_lr)
    for step in tqdm(range(steps), desc="optimize style", disable=not progress, leave=False):
        image_step = step % 2 == 0
        # A head step needs no gradient through VGG: the image is held fixed.
        raw, _ = objective(output if image_step else output.detach(), context, head)
        loss = objective.total(raw)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"optimize step {step + 1}: style loss is {loss.item()}; stopping")
        optimizer = image_optimizer if image_step else head_optimizer
        image_optimizer.zero_grad()
        head_optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            output.clamp_(0, 1)
    result = output.detach()
    if result.shape[-2:] != content.shape[-2:]:
        result = guided_upsample(content, content_small, result).clamp(0, 1)
    if not return_weights:
        return result
    with torch.no_grad():
        _, weights = objective(output.detach(), context, head)
    return result, weights
