"""Validation strips reach wandb as real pictures (not black), and PNGs without wandb."""

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import wandb
from PIL import Image
from pytorch_lightning.loggers import WandbLogger

from callbacks import ImageGridLogger
from callbacks.image_grid import to_uint8
from lightning_modules import DPEDPlus
from lightning_modules.losses import PixelContentLoss
from lightning_modules.nets import DPEDDiscriminator, DPEDGenerator
from tiny_data import TinyPairs


def _fit(tmp_path: Path, logger) -> None:
    model = DPEDPlus(DPEDGenerator(width=4, blocks=1), DPEDDiscriminator(patch_size=32), PixelContentLoss("mse"))
    trainer = pl.Trainer(max_steps=2, val_check_interval=1, limit_val_batches=2, logger=logger, callbacks=[ImageGridLogger(num_images=2)],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(model, TinyPairs(patch_size=32, batch_size=2))


def test_wandb_strips_keep_their_pixels(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    try:
        _fit(tmp_path, WandbLogger(project="test", save_dir=str(tmp_path), offline=True))
    finally:
        wandb.finish()  # a later WandbLogger in this process would otherwise reuse the run
    pictures = sorted(tmp_path.rglob("media/images/val/images/*.png"))
    assert pictures, "no strip logged"
    pixels = np.asarray(Image.open(pictures[0]).convert("RGB"))
    assert pixels.shape[1] == 3 * pixels.shape[0]  # input | output | target
    assert pixels.mean() > 20 and pixels.std() > 5  # TinyPairs' images are mid-grey on average, never black


def test_without_wandb_strips_are_png_files(tmp_path: Path) -> None:
    _fit(tmp_path, False)
    assert sorted(p.name for p in tmp_path.rglob("images/*.png"))[:2] == ["iter0000001_img0.png", "iter0000001_img1.png"]


def test_to_uint8_rounds_unit_floats() -> None:
    import torch

    out = to_uint8(torch.tensor([0.0, 0.5, 1.0, 1.7]).view(1, 1, 4).expand(3, 1, 4))
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3) and out[0, :, 0].tolist() == [0, 128, 255, 255]
