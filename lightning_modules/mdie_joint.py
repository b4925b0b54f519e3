"""MDIE step 3: the multi-domain StarGAN on intrinsics, with F and F' fine-tuned (thesis sec. 3.2.2-3).

For a batch of images x from the colour, texture and noise datasets, each with the label
of its own dataset only (``label``, ``mask``; see ``datamodules.multi_domain``):
``[A, S] = F(x)``, ``[A', S'] = G([A, S], c̃_trg)``, ``fake = F'(A', S')``, and

- ``L_D = L_adv + λ_cls·L_cls^real`` (+ ``λ_gp·GP`` for ``wgan-gp``),
- ``L_G = L_adv + λ_cls·L_cls^fake + λ_cyc·‖x − F'(G([A', S'], c̃_org))‖₁ + w_int·Lrec``,

where the classification losses count only the attribute the mask marks known and
``Lrec = α‖I_LQ − F'(F(I_LQ))‖₁ + β‖I_HQ − F'(F(I_HQ))‖²₂`` over the batch's low- and
high-quality images. Manual optimisation: the discriminator steps every batch, the
generator (with F and F' as lower-LR parameter groups of its optimizer) every
``n_critic``-th, both on one forward pass of F, G and F'; an *iteration* is one generator update.
"""

from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn

from mobile2dslr.errors import UserError

from .hparams import nets_without_config
from .init_from import init_parts_from
from .loss_guard import stop_if_not_finite
from .losses.intrinsic_loss import IntrinsicReconstructionLoss
from .losses.stargan_loss import (
    Adversarial,
    adversarial_d_loss,
    adversarial_g_loss,
    cycle_loss,
    gradient_penalty,
    masked_classification_loss,
)
from .nets.intrinsic_autoencoder import IntrinsicComposer, IntrinsicDecomposer
from .nets.mdie_enhancer import InferenceMode, MDIEEnhancer
from .nets.stargan import StarGANDiscriminator, StarGANGenerator

__all__ = ["MDIE"]


class MDIE(pl.LightningModule):
    """Multi-Domain Intrinsic Enhancement: decompose → StarGAN with mask vector → recompose.

    Batches: ``image`` (B, 3, P, P), ``label`` (B, 3) and ``mask`` (B, 3) (one-hot dataset)
    for training; ``lq``/``hq`` pairs for validation (PSNR/SSIM of the ``all_high`` output).

    Args:
        decomposer: F (thesis: symmetric autoencoder); fine-tuned at ``intrinsic_lr``.
        composer: F'; fine-tuned at ``intrinsic_lr``.
        generator: G on [A, S] conditioned on c̃ (6 values).
        discriminator: D on RGB with source and classification heads; its
            ``image_size`` must equal the data's ``patch_size``.
        adversarial: ``gan`` (the thesis) or ``wgan-gp`` (StarGAN's code).
        lambda_cls: weight of the domain-classification losses (1).
        lambda_cyc: weight of the RGB cycle loss (10).
        lambda_gp: weight of the gradient penalty (10; ``wgan-gp`` only).
        n_critic: discriminator steps per generator step (5 for ``wgan-gp`` in StarGAN).
        intrinsic_weight: weight of the intrinsic reconstruction term Lrec (1).
        alpha: weight of Lrec's low-quality L1 term.
        beta: weight of Lrec's high-quality squared-L2 term.
        lr: Adam learning rate of G and D (StarGAN: 1e-4).
        intrinsic_lr: learning rate of F and F' (lower: they are pretrained); 0 freezes them.
        betas: Adam betas (StarGAN: 0.5, 0.999).
        inference: ``all_high`` (every attribute high, mask all ones) or ``sequential``.
        init_from: a checkpoint to start from: an intrinsic stage's (F, F') or an MDIE one's
            (every net that fits).
    """

    optimizer_names = ("generator", "discriminator")

    def __init__(
        self,
        decomposer: Optional[nn.Module] = None,
        composer: Optional[nn.Module] = None,
        generator: Optional[nn.Module] = None,
        discriminator: Optional[nn.Module] = None,
        adversarial: Adversarial = "gan",
        lambda_cls: float = 1.0,
        lambda_cyc: float = 10.0,
        lambda_gp: float = 10.0,
        n_critic: int = 1,
        intrinsic_weight: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        lr: float = 1e-4,
        intrinsic_lr: float = 1e-5,
        betas: tuple[float, float] = (0.5, 0.999),
        inference: InferenceMode = "all_high",
        init_from: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=nets_without_config(locals()) + ["init_from"])
        if n_critic < 1:
            raise UserError(f"MDIE: n_critic must be >= 1, got {n_critic}")
        self.automatic_optimization = False
        self.decomposer = decomposer if decomposer is not None else IntrinsicDecomposer()
        self.composer = composer if composer is not None else IntrinsicComposer()
        self.generator = generator if generator is not None else StarGANGenerator()
        self.discriminator = discriminator if discriminator is not None else StarGANDiscriminator()
        self.reconstruction = IntrinsicReconstructionLoss(alpha, beta)
        self.inference = inference
        self.iteration = 0
        self.critic_steps = 0
        if init_from:
            parts = {"decomposer": self.decomposer, "composer": self.composer, "generator": self.generator, "discriminator": self.discriminator}
            init_parts_from(init_from, parts, required=["decomposer", "composer"])

    def enhancer(self) -> nn.Module:
        """The network ``mobile2dslr enhance`` runs: F → G (high quality) → F'."""
        return MDIEEnhancer(self.decomposer, self.generator, self.composer, self.inference)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance (B, 3, H, W) RGB in [0, 1] with the configured inference mode."""
        return self.enhancer()(image)

    def configure_optimizers(self):
        hp = self.hparams
        groups = [{"params": self.generator.parameters(), "lr": hp.lr}]
        intrinsics = list(self.decomposer.parameters()) + list(self.composer.parameters())
        if hp.intrinsic_lr > 0:
            groups.append({"params": intrinsics, "lr": hp.intrinsic_lr})
        opt_g = torch.optim.Adam(groups, betas=hp.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=hp.betas)
        return opt_g, opt_d

    def on_fit_start(self) -> None:
        size = getattr(self.discriminator, "patch_size", None)
        data_size = getattr(self.trainer.datamodule, "patch_size", None)
        if size is not None and data_size is not None and size != data_size:
            raise UserError(
                f"the discriminator is built for {size}x{size} patches but the data yields "
                f"{data_size}x{data_size}: set --model.discriminator.image_size {data_size}"
            )
        if self.hparams.intrinsic_lr <= 0:  # frozen F and F' keep their BatchNorm statistics too
            self.decomposer.eval().requires_grad_(False)
            self.composer.eval().requires_grad_(False)

    def _translate(self, intrinsics: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        translated = self.generator(intrinsics, condition)
        return translated, self.composer(translated[:, :3], translated[:, 3:])

    def conditions(self, label: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random target qualities of each image's own dataset, and c̃_org, c̃_trg = [c, m].

        The target keeps the image's mask: an image of the noise dataset is translated to a
        random noise quality and nothing is said about its colour or texture.
        """
        target = torch.randint(0, 2, label.shape, device=label.device).to(label.dtype) * mask
        return target, torch.cat([label * mask, mask], 1), torch.cat([target, mask], 1)

    def translate_batch(self, image: torch.Tensor, c_trg: torch.Tensor) -> dict[str, torch.Tensor]:
        """F, G and F' of a batch once: ``albedo``, ``shading``, ``translated`` [A', S'] and ``fake``.

        The discriminator step uses the fakes detached and the generator step that follows
        reuses them (G is not changed by D's step), as one forward pass.
        """
        albedo, shading = self.decomposer(image)
        translated, fake = self._translate(torch.cat([albedo, shading], 1), c_trg)
        return {"albedo": albedo, "shading": shading, "translated": translated, "fake": fake}

    def discriminator_terms(self, image, label, mask, fake) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Unweighted terms of L_D on real images and (detached) fakes, and the real images' class logits."""
        hp = self.hparams
        fake = fake.detach()
        real_src, real_cls = self.discriminator(image)
        fake_src, _ = self.discriminator(fake)
        terms = {"d_adv": adversarial_d_loss(real_src, fake_src, hp.adversarial), "d_cls": masked_classification_loss(real_cls, label, mask)}
        if hp.adversarial == "wgan-gp":
            terms["gp"] = gradient_penalty(lambda x: self.discriminator(x)[0], image, fake)
        return terms, real_cls

    def generator_terms(self, image, label, mask, target, c_org, fakes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted terms of L_G (adversarial, classification, RGB cycle, Lrec's two) from :meth:`translate_batch`."""
        hp = self.hparams
        fake_src, fake_cls = self.discriminator(fakes["fake"])
        _, cycled = self._translate(fakes["translated"], c_org)
        # Lrec: images of low quality in their own attribute (L1) and those of high quality (L2).
        low = (label * mask).sum(1) == 0
        recomposed = self.composer(fakes["albedo"], fakes["shading"])
        _, rec_terms = self.reconstruction(image[low], recomposed[low], image[~low], recomposed[~low])
        return {
            "g_adv": adversarial_g_loss(fake_src, hp.adversarial),
            "g_cls": masked_classification_loss(fake_cls, target, mask),
            "cycle": cycle_loss(image, cycled),
            **rec_terms,
        }

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        hp = self.hparams
        image = batch["image"]
        label, mask = batch["label"].to(image.dtype), batch["mask"].to(image.dtype)
        target, c_org, c_trg = self.conditions(label, mask)
        generator_step = (self.critic_steps + 1) % hp.n_critic == 0
        with torch.set_grad_enabled(generator_step):  # the graph is only needed for G's step
            fakes = self.translate_batch(image, c_trg)

        self.toggle_optimizer(opt_d)
        d_terms, real_cls = self.discriminator_terms(image, label, mask, fakes["fake"])
        loss_d = d_terms["d_adv"] + hp.lambda_cls * d_terms["d_cls"] + hp.lambda_gp * d_terms.get("gp", 0.0)
        stop_if_not_finite(self.iteration, loss_d, d_terms, "discriminator")
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.critic_steps += 1
        logs = {f"train/{k}": v.detach() for k, v in d_terms.items()}
        logs["train/loss_d"] = loss_d.detach()
        logs["train/d_accuracy_cls"] = self._accuracy(real_cls.detach(), label, mask)

        if generator_step:  # the generator (and F, F') step
            self.toggle_optimizer(opt_g)
            g_terms = self.generator_terms(image, label, mask, target, c_org, fakes)
            rec = self.reconstruction.alpha * g_terms["rec_lq_l1"] + self.reconstruction.beta * g_terms["rec_hq_l2"]
            loss_g = g_terms["g_adv"] + hp.lambda_cls * g_terms["g_cls"] + hp.lambda_cyc * g_terms["cycle"] + hp.intrinsic_weight * rec
            stop_if_not_finite(self.iteration, loss_g, g_terms, "generator")
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.iteration += 1
            logs.update({f"train/{k}": v.detach() for k, v in g_terms.items()})
            logs["train/loss_g"] = loss_g.detach()
            self.log("loss_g", loss_g.detach(), prog_bar=True, logger=False, batch_size=image.shape[0])
        logs["iteration"] = float(self.iteration)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=image.shape[0])

    @staticmethod
    def _accuracy(logits: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Share of known attributes the classifier gets right."""
        right = ((logits > 0).to(label.dtype) == label).to(label.dtype) * mask
        return right.sum() / mask.sum().clamp_min(1)

    def _evaluate(self, batch: dict) -> dict:
        output = self(batch["lq"]).clamp(0, 1)
        return {"lq": batch["lq"], "output": output, "hq": batch.get("hq"), "name": batch.get("name")}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Enhance a validation pair; PSNR/SSIM and images are the callbacks' job."""
        return self._evaluate(batch)

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        """Enhance a test pair; metrics and reports are the callbacks' job."""
        return self._evaluate(batch)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Enhance a batch; returns ``{"output": images in [0, 1], "name": names}``."""
        return {"output": self(batch["lq"]).clamp(0, 1), "name": batch.get("name")}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["iteration"] = self.iteration
        checkpoint["critic_steps"] = self.critic_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("iteration", 0))
        self.critic_steps = int(checkpoint.get("critic_steps", 0))
