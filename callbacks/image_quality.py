"""PSNR/SSIM of validation and test outputs (torchmetrics)."""

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

__all__ = ["ImageQualityMetrics", "image_quality_collection"]


def image_quality_collection() -> MetricCollection:
    """PSNR and SSIM on RGB in [0, 1] (data_range 1), per image then the mean over images."""
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        }
    )


class ImageQualityMetrics(Callback):
    """Log ``<stage>/psnr`` and ``<stage>/ssim`` of the output against the target.

    Reads the ``output`` and ``hq`` images that ``validation_step``/``test_step``
    return. With ``compare_input`` it also logs ``<stage>/psnr_input`` and
    ``<stage>/ssim_input``: the do-nothing baseline the output has to beat.

    Args:
        compare_input: also score the input (``lq``) against the target.
    """

    def __init__(self, compare_input: bool = True):
        self.compare_input = compare_input
        self.metrics: dict[str, MetricCollection] = {}

    def _collection(self, key: str, device: torch.device) -> MetricCollection:
        if key not in self.metrics:
            self.metrics[key] = image_quality_collection()
        return self.metrics[key].to(device)

    def _update(self, stage: str, outputs, pl_module: pl.LightningModule) -> None:
        if not isinstance(outputs, dict) or "output" not in outputs or outputs.get("hq") is None:
            return
        target = outputs["hq"].float()
        self._collection(f"{stage}/output", pl_module.device).update(outputs["output"].float().clamp(0, 1), target)
        if self.compare_input:
            self._collection(f"{stage}/input", pl_module.device).update(outputs["lq"].float().clamp(0, 1), target)

    def _log(self, stage: str, pl_module: pl.LightningModule) -> None:
        for which, suffix in (("output", ""), ("input", "_input")):
            collection = self.metrics.get(f"{stage}/{which}")
            if collection is None or not collection["psnr"].update_called:
                continue
            # compute() already gathers the states of every DDP process.
            for name, value in collection.compute().items():
                pl_module.log(f"{stage}/{name}{suffix}", value, on_epoch=True, sync_dist=False)
            collection.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._update("val", outputs, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._log("val", pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("test", outputs, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._log("test", pl_module)
