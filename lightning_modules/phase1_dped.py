"""MPSE phase 1: DPED+ paired enhancement (thesis sec. 3.1.1, DESIGN.md sec. 1)."""

from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn

from mobile2dslr.errors import UserError

from .hparams import nets_without_config
from .init_from import init_parts_from
from .loss_guard import stop_if_not_finite
from .losses import ColorLoss, TextureLoss, TVLoss, VGGContentLoss, discriminator_loss, to_dped_gray
from .nets import DPEDDiscriminator, DPEDGenerator

__all__ = ["DPEDPlus"]


class DPEDPlus(pl.LightningModule):
    """DPED+ trained on phone/DSLR pairs with DPED's losses and schedule.

    Generator objective (DPED's ``train_model.py``): ``w_content · content +
    w_texture · texture + w_color · color + w_tv · TV``; the discriminator sees
    grayscale patches, each the enhanced or the DSLR one at random, and minimises its
    cross-entropy. Manual optimisation, one Adam per network; one *iteration* is one
    generator update (``self.iteration``), the unit of logs and of the LR halving
    callback. ``trainer.max_steps`` counts both optimizers' steps: 2 per iteration.

    Batches are dicts with ``lq`` (phone) and ``hq`` (DSLR) images (B, 3, H, W) in [0, 1].

    Args:
        generator: the enhancer (default: DPED's generator with BatchNorm).
        discriminator: the texture discriminator on gray patches (default: DPED's for
            100x100 patches; its ``patch_size`` must match the data's).
        content_loss: ``VGGContentLoss`` (DPED, weight 10) or ``PixelContentLoss``
            (``mse`` / ``l1+l2``, weight 1000); its ``weight`` attribute is used.
        color_weight: weight of DPED's blurred-colour loss (0.5).
        texture_weight: weight of the adversarial texture loss (1).
        tv_weight: weight of the total-variation loss (2000).
        lr: Adam learning rate of the generator (5e-4 in DPED).
        discriminator_lr: Adam learning rate of the discriminator (default: ``lr``).
        betas: Adam betas of both optimizers.
        init_from: checkpoint to start from (fine-tuning): its generator weights, and its
            discriminator's when they fit (e.g. an ``import-dped`` checkpoint).
    """

    optimizer_names = ("generator", "discriminator")

    def __init__(
        self,
        generator: Optional[nn.Module] = None,
        discriminator: Optional[nn.Module] = None,
        content_loss: Optional[nn.Module] = None,
        color_weight: float = 0.5,
        texture_weight: float = 1.0,
        tv_weight: float = 2000.0,
        lr: float = 5e-4,
        discriminator_lr: Optional[float] = None,
        betas: tuple[float, float] = (0.9, 0.999),
        init_from: Optional[str] = None,
    ):
        super().__init__()
        # init_from only seeds a new run: a checkpoint rebuilt later must not need that file.
        self.save_hyperparameters(ignore=nets_without_config(locals()) + ["init_from"])
        self.automatic_optimization = False
        self.generator = generator if generator is not None else DPEDGenerator()
        self.discriminator = discriminator if discriminator is not None else DPEDDiscriminator()
        self.content_loss = content_loss if content_loss is not None else VGGContentLoss()
        self.color_loss = ColorLoss(color_weight)
        self.texture_loss = TextureLoss(texture_weight)
        self.tv_loss = TVLoss(tv_weight)
        self.iteration = 0
        if init_from:
            self._init_from(init_from)

    def _init_from(self, path: str) -> None:
        # The release of DPED has no discriminator: it then starts fresh, with a warning.
        init_parts_from(path, {"generator": self.generator, "discriminator": self.discriminator}, required=["generator"])

    def enhancer(self) -> nn.Module:
        """The network ``mobile2dslr enhance`` runs: the generator."""
        return self.generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance (B, 3, H, W) RGB in [0, 1]; the output is not clipped."""
        return self.generator(image)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=hp.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.discriminator_lr or hp.lr, betas=hp.betas)
        return opt_g, opt_d

    def generator_losses(self, enhanced: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted terms of the generator objective."""
        return {
            "content": self.content_loss(enhanced, target),
            "color": self.color_loss(enhanced, target),
            "texture": self.texture_loss(self.discriminator(to_dped_gray(enhanced))),
            "tv": self.tv_loss(enhanced),
        }

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        phone, dslr = batch["lq"], batch["hq"]

        # Generator step; the discriminator's weights are frozen meanwhile.
        self.toggle_optimizer(opt_g)
        enhanced = self.generator(phone)
        terms = self.generator_losses(enhanced, dslr)
        weights = {
            "content": self.content_loss.weight,
            "color": self.color_loss.weight,
            "texture": self.texture_loss.weight,
            "tv": self.tv_loss.weight,
        }
        loss_g = sum(weights[name] * value for name, value in terms.items())
        stop_if_not_finite(self.iteration, loss_g, terms, "generator")
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        # Discriminator step: each sample is the enhanced or the DSLR patch at random.
        self.toggle_optimizer(opt_d)
        is_dslr = torch.randint(0, 2, (phone.shape[0],), device=self.device).to(phone.dtype)
        pick = is_dslr.view(-1, 1, 1, 1)
        patches = to_dped_gray(pick * dslr + (1 - pick) * enhanced.detach())
        probs = self.discriminator(patches)
        loss_d = discriminator_loss(probs, is_dslr)
        stop_if_not_finite(self.iteration, loss_d, {}, "discriminator")
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.iteration += 1

        accuracy = (probs.argmax(1) == (1 - is_dslr).long()).float().mean()
        logs = {f"train/{name}": value.detach() for name, value in terms.items()}
        logs.update({f"train/weighted/{name}": weights[name] * value.detach() for name, value in terms.items()})
        logs.update({"train/loss_g": loss_g.detach(), "train/loss_d": loss_d.detach(), "train/d_accuracy": accuracy})
        logs["iteration"] = float(self.iteration)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=phone.shape[0])
        self.log("loss_g", loss_g.detach(), prog_bar=True, logger=False, batch_size=phone.shape[0])

    def _evaluate(self, batch: dict) -> dict[str, torch.Tensor]:
        output = self.generator(batch["lq"]).clamp(0, 1)
        return {"lq": batch["lq"], "output": output, "hq": batch["hq"], "name": batch.get("name")}

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Enhance a validation batch; metrics and images are the callbacks' job."""
        return self._evaluate(batch)

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Enhance a test batch; metrics and reports are the callbacks' job."""
        return self._evaluate(batch)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Enhance a batch; returns ``{"output": images clipped to [0, 1], "name": names}``."""
        return {"output": self.generator(batch["lq"]).clamp(0, 1), "name": batch.get("name")}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["iteration"] = self.iteration

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("iteration", 0))

    def on_fit_start(self) -> None:
        patch = getattr(self.discriminator, "patch_size", None)
        data_patch = getattr(self.trainer.datamodule, "patch_size", None)
        if patch is not None and data_patch is not None and patch != data_patch:
            raise UserError(
                f"the discriminator is built for {patch}x{patch} patches but the data yields "
                f"{data_patch}x{data_patch}: set --model.discriminator.patch_size {data_patch}"
            )

