"""Validation image strips (input | output | target) to wandb, or to PNG files."""

from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

from datamodules.io import write_image

__all__ = ["ImageGridLogger", "side_by_side"]


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


class ImageGridLogger(Callback):
    """After each validation, log ``input | output | target`` strips of the first images.

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

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._strips = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict) or "output" not in outputs:
            return
        names = outputs.get("name") or [f"sample{len(self._strips) + i}" for i in range(len(outputs["output"]))]
        for i in range(outputs["output"].shape[0]):
            if len(self._strips) >= self.num_images:
                return
            images = [outputs["lq"][i], outputs["output"][i]] + ([outputs["hq"][i]] if outputs.get("hq") is not None else [])
            self._strips.append((str(names[i]), side_by_side(*images, max_side=self.max_side)))

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
                    images=[strip],
                    caption=[f"input | output | target, iteration {iteration}"],
                    step=trainer.global_step,
                )
        if folder is not None:
            for name, strip in self._strips:
                write_image(folder / f"iter{iteration:07d}_{name}.png", strip.permute(1, 2, 0).numpy())
