"""Training throughput of MPSE phase 1 (DPED+): seconds per iteration on this machine.

An iteration is one generator update plus one discriminator update, measured through the
real LightningModule (`training_step` under a Lightning Trainer, no logger), so data
loading, both optimizers and every loss are included. Prints one table; ratios are
measured in the same run.

    make bench                     # or: .venv/bin/python benchmarks/train_speed.py --iterations 3
"""

import argparse
import logging
import platform
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from datamodules import DemoDataModule
from lightning_modules import DPEDPlus
from lightning_modules.losses import PixelContentLoss, VGGContentLoss
from lightning_modules.nets import DPEDDiscriminator, DPEDGenerator

# name: (generator kwargs, content loss, patch, batch)
SETUPS = {
    "full recipe (DPED+: 64 ch, separable, VGG, 100px x 50)": (dict(width=64, activation="lrelu", separable=True), "vgg", 100, 50),
    "official DPED generator (64 ch, VGG, 100px x 50)": (dict(width=64, norm="instance"), "vgg", 100, 50),
    "demo (32 ch, VGG, 64px x 8)": (dict(width=32, activation="lrelu"), "vgg", 64, 8),
    "demo with pixel MSE content (32 ch, 64px x 8)": (dict(width=32, activation="lrelu"), "mse", 64, 8),
}


class IterationTimer(Callback):
    def __init__(self, warmup: int):
        self.warmup, self.times, self._start = warmup, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration > self.warmup:
            self.times.append(time.perf_counter() - self._start)


def measure(generator_kwargs: dict, content: str, patch: int, batch: int, iterations: int, warmup: int) -> float:
    pl.seed_everything(0, verbose=False)
    model = DPEDPlus(
        generator=DPEDGenerator(**generator_kwargs),
        discriminator=DPEDDiscriminator(patch_size=patch),
        content_loss=VGGContentLoss() if content == "vgg" else PixelContentLoss("mse"),
    )
    data = DemoDataModule(patch_size=patch, batch_size=batch, samples_per_epoch=batch * (iterations + warmup + 1))
    timer = IterationTimer(warmup)
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_steps=2 * (iterations + warmup), logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
    )
    trainer.fit(model, data)
    return sum(timer.times) / len(timer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per setup")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"MPSE phase 1 training speed on {device}, torch {torch.__version__}")
    print(f"{'setup':58s} {'s/iteration':>12s} {'iterations/s':>13s} {'vs full recipe':>15s}")
    base = None
    for name, setup in SETUPS.items():
        seconds = measure(*setup, iterations=args.iterations, warmup=args.warmup)
        base = base or seconds
        print(f"{name:58s} {seconds:12.3f} {1 / seconds:13.3f} {base / seconds:14.1f}x")


if __name__ == "__main__":
    main()
