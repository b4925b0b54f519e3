"""Per-image PSNR/SSIM report of a test run, with side-by-side images."""

import csv
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from datamodules.io import write_image

from .image_grid import side_by_side

__all__ = ["EnhancementReport"]


def psnr_ssim(image: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    image, target = image[None].float().clamp(0, 1), target[None].float()
    psnr = peak_signal_noise_ratio(image, target, data_range=1.0, dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(image, target, data_range=1.0)
    return float(psnr), float(ssim)


class EnhancementReport(Callback):
    """Score every test image and write a report: the input and the output, each against
    the clean target (PSNR in dB and SSIM on RGB in [0, 1], per image and mean).

    Writes ``<out_dir>/report.md`` (also printed), ``metrics.csv``,
    ``images/<name>.png`` (input | output | target) and ``side_by_side.png`` (every
    strip stacked). Only ``test`` runs use it (``mobile2dslr test --config ...
    --ckpt_path ...``). In DDP each process sees part of the test set: run reports on
    one device.

    Args:
        out_dir: folder for the report (created); default ``<trainer.default_root_dir>/report``.
        overview_width: width in pixels of each strip in ``side_by_side.png``.
    """

    def __init__(self, out_dir: Optional[str] = None, overview_width: int = 1536):
        self.out_dir = Path(out_dir) if out_dir else None
        self.overview_width = overview_width
        self.rows: list[dict] = []
        self._strips: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.rows, self._strips = [], []
        if self.out_dir is None:
            self.out_dir = Path(trainer.default_root_dir) / "report"

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(outputs, dict) or outputs.get("hq") is None:
            return
        names = outputs.get("name") or [f"image{len(self.rows) + i}" for i in range(len(outputs["output"]))]
        for i, name in enumerate(names):
            lq, out, hq = outputs["lq"][i], outputs["output"][i], outputs["hq"][i]
            psnr_in, ssim_in = psnr_ssim(lq, hq)
            psnr_out, ssim_out = psnr_ssim(out, hq)
            self.rows.append(
                {"image": str(name), "psnr_input": psnr_in, "psnr_output": psnr_out, "ssim_input": ssim_in, "ssim_output": ssim_out}
            )
            strip = side_by_side(lq, out, hq)
            write_image(self.out_dir / "images" / f"{name}.png", strip.permute(1, 2, 0).numpy())
            height = max(1, round(strip.shape[1] * self.overview_width / strip.shape[2]))
            self._strips.append(F.interpolate(strip[None], size=(height, self.overview_width), mode="area")[0])

    @rank_zero_only
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows:
            return
        keys = ["psnr_input", "psnr_output", "ssim_input", "ssim_output"]
        mean = {key: sum(row[key] for row in self.rows) / len(self.rows) for key in keys}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image"] + keys)
            writer.writeheader()
            writer.writerows(self.rows + [{"image": "MEAN", **mean}])
        lines = [
            "| image | PSNR input (dB) | PSNR output (dB) | SSIM input | SSIM output |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in self.rows + [{"image": "**mean**", **mean}]:
            lines.append(
                f"| {row['image']} | {row['psnr_input']:.2f} | {row['psnr_output']:.2f} "
                f"| {row['ssim_input']:.4f} | {row['ssim_output']:.4f} |"
            )
        verdict = "beats" if mean["psnr_output"] > mean["psnr_input"] else "does NOT beat"
        iteration = getattr(pl_module, "iteration", None)
        report = "\n".join(
            [
                "# mobile2dslr enhancement report",
                "",
                f"Model: `{type(pl_module).__name__}`" + (f", iteration {iteration}" if iteration is not None else "") + ".",
                "Scores against the clean target: RGB in [0, 1], data range 1, per image then the mean.",
                "",
                *lines,
                "",
                f"On the mean PSNR the output {verdict} the input "
                f"({mean['psnr_output'] - mean['psnr_input']:+.2f} dB; SSIM {mean['ssim_output'] - mean['ssim_input']:+.4f}).",
                "",
                "Side by side (input | output | target): `side_by_side.png`, one file per image in `images/`.",
                "",
            ]
        )
        (self.out_dir / "report.md").write_text(report)
        write_image(self.out_dir / "side_by_side.png", torch.cat(self._strips, dim=1).permute(1, 2, 0).numpy())
        print(f"\n{report}\nreport written to {self.out_dir}/report.md")
