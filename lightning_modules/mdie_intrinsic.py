"""MDIE steps 1 and 2: intrinsic decomposition F and composition F' (thesis sec. 3.2.1, 5.2).

1. :class:`IntrinsicPretrain` learns F and F' on MPI Sintel's ground truth albedo and
   shading, with scale-invariant losses (intrinsics are only defined up to a scale).
2. :class:`IntrinsicSelfSupervised` adapts them to real photos without labels:
   ``Lrec = α‖I_LQ − F'(F(I_LQ))‖₁ + β‖I_HQ − F'(F(I_HQ))‖²₂``.
Each stage starts from the previous one's checkpoint (``init_from``).
"""

from typing import Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from .hparams import nets_without_config
from .init_from import init_parts_from
from .loss_guard import stop_if_not_finite
from .losses.intrinsic_loss import IntrinsicReconstructionLoss, lmse, si_mse
from .nets.intrinsic_autoencoder import IntrinsicComposer, IntrinsicDecomposer

__all__ = ["IntrinsicPretrain", "IntrinsicSelfSupervised", "IntrinsicStage"]


class IntrinsicStage(pl.LightningModule):
    """What both intrinsic stages share: F, F', Adam, the iteration counter, ``init_from``.

    Args:
        decomposer: F (default: the thesis's symmetric autoencoder).
        composer: F' (default: the same shape, 6 in, 3 out).
        lr: Adam learning rate.
        betas: Adam betas.
        init_from: a checkpoint holding ``decomposer.*`` and ``composer.*`` (an earlier
            stage) to start from; not stored in the hyperparameters.
    """

    optimizer_names = ("intrinsics",)

    def __init__(
        self,
        decomposer: Optional[nn.Module] = None,
        composer: Optional[nn.Module] = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        init_from: Optional[str] = None,
    ):
        super().__init__()
        self.decomposer = decomposer if decomposer is not None else IntrinsicDecomposer()
        self.composer = composer if composer is not None else IntrinsicComposer()
        self.iteration = 0
        if init_from:
            init_parts_from(init_from, {"decomposer": self.decomposer, "composer": self.composer}, required=["decomposer", "composer"])

    def configure_optimizers(self):
        return torch.optim.Adam(list(self.decomposer.parameters()) + list(self.composer.parameters()), lr=self.hparams.lr, betas=self.hparams.betas)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(albedo, shading, recomposition) of (B, 3, H, W) images in [0, 1]."""
        albedo, shading = self.decomposer(image)
        return albedo, shading, self.composer(albedo, shading)

    def _log_train(self, total: torch.Tensor, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        stop_if_not_finite(self.iteration, total, terms)
        logs = {f"train/{name}": value.detach() for name, value in terms.items()}
        logs["train/loss"] = total.detach()
        logs["iteration"] = float(self.iteration + 1)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch_size)
        self.log("loss", total.detach(), prog_bar=True, logger=False, batch_size=batch_size)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.iteration += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["iteration"] = self.iteration

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("iteration", 0))


class IntrinsicPretrain(IntrinsicStage):
    """MDIE step 1: F and F' on MPI Sintel (``SintelDataModule`` batches: image, albedo, shading).

    ``L = w_A·si-MSE(A, A_gt) + w_S·si-MSE(S, S_gt) + w_rec·‖I − F'(A, S)‖²₂``. Validation
    logs ``val/albedo_si_mse``, ``val/shading_si_mse``, ``val/albedo_lmse``,
    ``val/shading_lmse`` and ``val/reconstruction_mse``, and strips of
    image | albedo | shading | recomposition | true albedo | true shading.

    Args:
        decomposer: F.
        composer: F'.
        albedo_weight: weight of the albedo si-MSE.
        shading_weight: weight of the shading si-MSE.
        reconstruction_weight: weight of the recomposition MSE.
        lr: Adam learning rate.
        betas: Adam betas.
        init_from: checkpoint to start from (``decomposer.*``, ``composer.*``).
    """

    def __init__(
        self,
        decomposer: Optional[nn.Module] = None,
        composer: Optional[nn.Module] = None,
        albedo_weight: float = 1.0,
        shading_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        init_from: Optional[str] = None,
    ):
        super().__init__(decomposer, composer, lr, betas, init_from)
        self.save_hyperparameters(ignore=nets_without_config(locals()) + ["init_from"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        albedo, shading, recomposed = self(batch["image"])
        terms = {
            "albedo_si_mse": si_mse(albedo, batch["albedo"]),
            "shading_si_mse": si_mse(shading, batch["shading"]),
            "reconstruction_mse": F.mse_loss(recomposed, batch["image"]),
        }
        hp = self.hparams
        total = hp.albedo_weight * terms["albedo_si_mse"] + hp.shading_weight * terms["shading_si_mse"] + hp.reconstruction_weight * terms["reconstruction_mse"]
        self._log_train(total, terms, batch["image"].shape[0])
        return total

    def _evaluate(self, batch: dict, stage: str) -> dict:
        image = batch["image"]
        albedo, shading, recomposed = self(image)
        metrics = {
            "albedo_si_mse": si_mse(albedo, batch["albedo"]),
            "shading_si_mse": si_mse(shading, batch["shading"]),
            "albedo_lmse": lmse(albedo, batch["albedo"]),
            "shading_lmse": lmse(shading, batch["shading"]),
            "reconstruction_mse": F.mse_loss(recomposed, image),
        }
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, on_epoch=True, batch_size=image.shape[0], sync_dist=True)
        panels = [image, albedo, _display_shading(shading), recomposed, batch["albedo"], _display_shading(batch["shading"])]
        return {"panels": panels, "name": batch.get("name"), "caption": "image | albedo | shading | recomposed | true albedo | true shading"}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Scale-invariant scores of the held-out frames; images are the callbacks' job."""
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        """As validation, logged under ``test/``."""
        return self._evaluate(batch, "test")


class IntrinsicSelfSupervised(IntrinsicStage):
    """MDIE step 2: F and F' on unlabeled real photos (``UnpairedDataModule`` batches).

    Batches hold phone photos ``lq`` and professional photos ``ref``; the loss is
    ``Lrec = α‖I_LQ − F'(F(I_LQ))‖₁ + β‖I_HQ − F'(F(I_HQ))‖²₂``, starting from the Sintel
    pretraining (``init_from``) so that F keeps meaning albedo and shading.

    Args:
        decomposer: F.
        composer: F'.
        alpha: weight of the phone photos' L1 reconstruction.
        beta: weight of the professional photos' squared-L2 reconstruction.
        lr: Adam learning rate (lower than pretraining: this adapts, it does not relearn).
        betas: Adam betas.
        init_from: the :class:`IntrinsicPretrain` checkpoint to start from.
    """

    def __init__(
        self,
        decomposer: Optional[nn.Module] = None,
        composer: Optional[nn.Module] = None,
        alpha: float = 1.0,
        beta: float = 1.0,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        init_from: Optional[str] = None,
    ):
        super().__init__(decomposer, composer, lr, betas, init_from)
        self.save_hyperparameters(ignore=nets_without_config(locals()) + ["init_from"])
        self.reconstruction = IntrinsicReconstructionLoss(alpha, beta)

    def _reconstruct(self, batch: dict) -> tuple[torch.Tensor, dict, list]:
        lq, hq = batch["lq"], batch["ref"]
        albedo, shading, lq_rec = self(lq)
        _, _, hq_rec = self(hq)
        total, terms = self.reconstruction(lq, lq_rec, hq, hq_rec)
        return total, terms, [lq, albedo, _display_shading(shading), lq_rec]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        total, terms, _ = self._reconstruct(batch)
        self._log_train(total, terms, batch["lq"].shape[0])
        return total

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Reconstruction terms of held-out photos, and image | albedo | shading | recomposed strips."""
        total, terms, panels = self._reconstruct(batch)
        logs = {f"val/{name}": value for name, value in terms.items()}
        logs["val/loss"] = total
        self.log_dict(logs, on_epoch=True, batch_size=batch["lq"].shape[0], sync_dist=True)
        return {"panels": panels, "name": batch.get("name"), "caption": "photo | albedo | shading | recomposed"}


def _display_shading(shading: torch.Tensor) -> torch.Tensor:
    """Shading scaled into [0, 1] per image for display (its scale is arbitrary)."""
    peak = shading.detach().flatten(1).quantile(0.99, dim=1).clamp_min(1e-6)
    return (shading / peak.view(-1, 1, 1, 1)).clamp(0, 1)
