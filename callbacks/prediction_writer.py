"""Write the images ``predict`` enhances."""

from pathlib import Path
from typing import Literal

from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities import rank_zero_info

from datamodules.io import write_image

__all__ = ["EnhancedImageWriter"]


class EnhancedImageWriter(BasePredictionWriter):
    """Save each enhanced image as ``<out_dir>/<name>.<extension>`` (atomic writes; a name
    with sub-folders keeps them).

    Reads the ``{"output": (B, 3, H, W), "name": [...]}`` that ``predict_step`` returns.
    Existing files are kept unless ``overwrite`` is set, so a re-run never destroys
    earlier results.

    Args:
        out_dir: output folder (created).
        extension: ``png`` (lossless, default), ``jpg`` or ``tif``.
        overwrite: replace files that already exist.
    """

    def __init__(self, out_dir: str = "outputs/predict", extension: Literal["png", "jpg", "tif"] = "png", overwrite: bool = False):
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.extension = extension
        self.overwrite = overwrite
        self.written = 0
        self.kept = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        images = prediction["output"]
        names = prediction.get("name") or [f"{batch_idx:06d}_{i}" for i in range(len(images))]
        for image, name in zip(images, names):
            # Names may hold sub-folders (``scene/0001``); never let one climb out of out_dir.
            relative = Path(*[part for part in Path(str(name)).parts if part not in ("..", "/", "")])
            target = self.out_dir / relative.with_suffix(f".{self.extension}")
            if target.exists() and not self.overwrite:
                self.kept += 1
                continue
            write_image(target, image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            self.written += 1

    def on_predict_end(self, trainer, pl_module) -> None:
        kept = f", kept {self.kept} existing (overwrite=false)" if self.kept else ""
        rank_zero_info(f"wrote {self.written} enhanced images to {self.out_dir}{kept}")
