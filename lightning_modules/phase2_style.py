"""MPSE phase 2: semantic style refinement, feed-forward mode (thesis sec. 3.1.2, DESIGN.md sec. 1)."""

from __future__ import annotations

import copy
import logging
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn

from mobile2dslr.errors import WeightsError

from .hparams import nets_without_config
from .nets import DPEDGenerator
from .nets.lambda_head import LambdaHead
from .nets.pretrained import load_state_dict_file, state_dict_mismatch
from .style_objective import StyleObjective

__all__ = ["SemanticStyleRefinement"]

log = logging.getLogger(__name__)


class SemanticStyleRefinement(pl.LightningModule):
    """A refiner network trained to restyle phone photos like professional references.

    The refiner starts as a copy of the phase-1 generator (``init_from``); a frozen copy
    of that generator makes the content image C = phase1(phone photo). On each crop
    of the unpaired data (UPR) with its recommended reference R, the refiner's output O
    minimises :class:`StyleObjective`: content (O vs C), Λ-weighted per-region Gram
    style (O vs R), the Matting Laplacian of C (photorealism) and TV. The Λ head is
    trained with it. Inference is one pass of the refiner: no reference, no
    segmentation, tileable at any size (``mobile2dslr enhance`` runs it).

    Batches are dicts with ``lq`` (phone crops) and ``ref`` (reference crops), both
    (B, 3, H, W) in [0, 1], and optionally ``name``/``ref_name`` (for mask files) and
    ``hq`` (a clean target, scored by the metrics callback when present).

    Args:
        refiner: The network (default: DPED's generator); its config must match the
            phase-1 generator's when ``init_from`` is given.
        objective: The losses and their weights (default: DPST's ratios, VGG-19,
            the fallback segmenter).
        lambda_hidden: Hidden width of the Λ head.
        lr: Adam learning rate of the refiner.
        lambda_lr: Adam learning rate of the Λ head (default: ``lr``).
        betas: Adam betas.
        init_from: Phase-1 checkpoint (or any checkpoint with ``generator.*`` weights)
            that initialises the refiner and the frozen content generator. Without it the
            refiner starts random and C is the phone photo itself.
    """

    def __init__(
        self,
        refiner: Optional[nn.Module] = None,
        objective: Optional[StyleObjective] = None,
        lambda_hidden: int = 256,
        lr: float = 1e-4,
        lambda_lr: Optional[float] = None,
        betas: tuple[float, float] = (0.9, 0.999),
        init_from: Optional[str] = None,
    ) -> None:
        super().__init__()
        # init_from only seeds a new run: a checkpoint rebuilt later must not need that file.
        self.save_hyperparameters(ignore=nets_without_config(locals()) + ["init_from"])
        self.refiner = refiner if refiner is not None else DPEDGenerator()
        self.objective = objective if objective is not None else StyleObjective()
        self.lambda_head = LambdaHead(len(self.objective.style_layers), self.objective.num_regions, hidden=lambda_hidden)
        # The content generator is saved in checkpoints; the flag says whether it was set.
        self.content_generator = copy.deepcopy(self.refiner).requires_grad_(False).eval()
        self.register_buffer("has_content_generator", torch.tensor(False))
        if init_from:
            self._init_from(init_from)

    def _init_from(self, path: str) -> None:
        state = load_state_dict_file(path)
        part = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
        problem = state_dict_mismatch(self.refiner.state_dict(), part)
        if problem is not None:
            raise WeightsError(
                f"{path}: its generator does not fit the refiner's config (set --model.refiner like the phase-1 "
                f"generator): {problem}"
            )
        self.refiner.load_state_dict(part)
        self.content_generator.load_state_dict(part)
        self.has_content_generator.fill_(True)

    def on_fit_start(self) -> None:
        if not bool(self.has_content_generator):
            log.warning("SemanticStyleRefinement: no init_from: the refiner starts random and the content image is the phone photo")

    @property
    def iteration(self) -> int:
        """Refiner updates so far (the unit of logs and of LR halving)."""
        return self.global_step

    def train(self, mode: bool = True) -> "SemanticStyleRefinement":
        super().train(mode)
        self.content_generator.eval()  # frozen: its batch norm uses running statistics
        return self

    def enhancer(self) -> nn.Module:
        """The network ``mobile2dslr enhance`` runs: the refiner."""
        return self.refiner

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Refine (B, 3, H, W) phone photos in [0, 1]; the output is not clipped."""
        return self.refiner(image)

    @torch.no_grad()
    def content(self, image: torch.Tensor) -> torch.Tensor:
        """The content image C: the phase-1 output (or the photo itself without one), clipped."""
        if bool(self.has_content_generator):
            return self.content_generator(image).clamp(0, 1)
        return image

    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.Adam(
            [
                {"params": self.refiner.parameters(), "lr": hp.lr, "name": "refiner"},
                {"params": self.lambda_head.parameters(), "lr": hp.lambda_lr or hp.lr, "name": "lambda_head"},
            ],
            betas=hp.betas,
        )

    def _losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        phone, reference = batch["lq"], batch["ref"]
        context = self.objective.context(self.content(phone), reference, batch.get("name"), batch.get("ref_name"))
        output = self.refiner(phone)
        raw, weights = self.objective(output, context, self.lambda_head)
        return self.objective.total(raw), raw, weights, output

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, raw, weights, _ = self._losses(batch)
        if not torch.isfinite(loss).item():  # stop before the step: no NaN weights in a checkpoint
            bad = [f"{name}={value.item():.4g}" for name, value in raw.items() if not torch.isfinite(value).item()]
            raise FloatingPointError(f"iteration {self.iteration + 1}: style loss is {loss.item()} ({', '.join(bad)}); stopping")
        self._log_terms("train", loss, raw, weights, batch["lq"].shape[0], on_step=True)
        return loss

    def _log_terms(self, stage: str, loss, raw, weights, batch_size: int, on_step: bool) -> None:
        logs = {f"{stage}/{name}": value.detach() for name, value in raw.items()}
        logs.update({f"{stage}/weighted/{name}": self.objective.weights[name] * value.detach() for name, value in raw.items()})
        logs[f"{stage}/loss"] = loss.detach()
        # Λ per region (mean over layers and batch): which regions the style loss attends to.
        for index, name in enumerate(self.objective.regions.names):
            logs[f"{stage}/lambda/{name}"] = weights[:, :, index].mean().detach()
        self.log_dict(logs, on_step=on_step, on_epoch=not on_step, batch_size=batch_size)
        if on_step:
            self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=batch_size)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Refine a validation batch and log its loss terms; images go to the callbacks."""
        loss, raw, weights, output = self._losses(batch)
        self._log_terms("val", loss, raw, weights, batch["lq"].shape[0], on_step=False)
        return {"lq": batch["lq"], "output": output.clamp(0, 1), "hq": batch.get("hq"), "ref": batch["ref"], "name": batch.get("name")}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        """Refine a test batch; metrics and reports are the callbacks' job."""
        return {"lq": batch["lq"], "output": self.refiner(batch["lq"]).clamp(0, 1), "hq": batch.get("hq"), "name": batch.get("name")}

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Refine a batch; returns ``{"output": images clipped to [0, 1], "name": names}``."""
        return {"output": self.refiner(batch["lq"]).clamp(0, 1), "name": batch.get("name")}
