"""Validation image strips (input | output | target) to wandb, or to PNG files."""

from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

from datamodules.io import write_image

__all__ = ["ImageGridLogger", "side_by_side", "to_uint8"]


def side_by_side(*images: torch.Tensor, max_side: Optional[int] = None) -> torch.Tensor:
    """Concatenate (3, H, W) images of one size left to right, clipped to [0, 1].

    Args:
        images: tensors of the same shape.
        max_side: downscale the result so its longer side is at most this.

    Returns:
        (3, H, n·W) tensor on the CPU.
    """
    strip = torch.cat([image.detach().float().clamp(0, 1).cpu() for image in images], dim=-1)
    if max_side is not None and max(strip.shape[-2:]) > max_side:
        scale = max_side / max(strip.shape[-2:])
        size = [max(1, round(side * scale)) for side in strip.shape[-2:]]
        strip = F.interpolate(strip[None], size=size, mode="area")[0]
    return strip


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] → (H, W, 3) uint8, rounded."""
    return (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


class ImageGridLogger(Callback):
    """After each validation, log ``input | output | target`` strips of the first images.

    A ``validation_step`` may return its own panels instead (``{"panels": [(B, 3, H, W), ...],
    "caption": "image | albedo | ..."}``), e.g. the intrinsic stages' albedo and shading.

    With a ``WandbLogger`` they go to wandb as ``val/images/<name>`` at the current iteration; without one they are written
    as PNGs under ``<log dir>/images/`` so CPU users without a dashboard see them too.

    Args:
        num_images: how many validation samples to show.
        max_side: downscale each strip so its longer side is at most this many pixels.
    """

    def __init__(self, num_images: int = 4, max_side: int = 768):
        self.num_images = num_images
        self.max_side = max_side
        self._strips: list[tuple[str, torch.Tensor]] = []
        self._caption = "input | output | target"

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._strips = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict):
            return
        if "panels" in outputs:
            panels, self._caption = outputs["panels"], outputs.get("caption", "")
        elif "output" in outputs:
            panels = [outputs["lq"], outputs["output"]] + ([outputs["hq"]] if outputs.get("hq") is not None else [])
        else:
            return
        names = outputs.get("name") or [f"sample{len(self._strips) + i}" for i in range(len(panels[0]))]
        for i in range(panels[0].shape[0]):
            if len(self._strips) >= self.num_images:
                return
            self._strips.append((str(names[i]), side_by_side(*(panel[i] for panel in panels), max_side=self.max_side)))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        # trainer.log_dir is a collective under DDP: every rank must ask, not only rank 0.
        folder = None if wandb_loggers else Path(trainer.log_dir or trainer.default_root_dir) / "images"
        if not trainer.is_global_zero or not self._strips:
            return
        iteration = int(getattr(pl_module, "iteration", trainer.global_step))
        for logger in wandb_loggers:
            for name, strip in self._strips:  # one key per sample: wandb panels want one size
                logger.log_image(
                    key=f"val/images/{name}",
                    images=[to_uint8(strip)],  # wandb (0.31) takes array values as 0-255: floats in [0, 1] log black
                    caption=[f"{self._caption}, iteration {iteration}"],
                    step=trainer.global_step,
                )
        if folder is not None:
            for name, strip in self._strips:
                write_image(folder / f"iter{iteration:07d}_{name}.png", strip.permute(1, 2, 0).numpy())
