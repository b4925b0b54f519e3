"""Training throughput of every phase: iterations per second through the real configs.

Each phase is built from its config by the ``mobile2dslr`` CLI (model, DataModule, trainer,
callbacks, with logging and validation off) and timed per training batch after a warm-up,
so data loading, every optimizer step and every loss are included. An iteration is one
generator update (phase 1, MDIE joint) or one optimizer step (the other phases); each
batch is one iteration in every config timed here.
"""

import tempfile
import time

from pytorch_lightning.callbacks import Callback

from mobile2dslr.cli import resolve_config_paths, run_lightning

__all__ = ["PHASES", "measure_phase"]

#: name → (config, optimizer steps per batch, extra overrides)
PHASES = {
    "MPSE phase 1 (demo)": ("configs/mpse/demo_phase1.yaml", 2, []),
    "MPSE phase 1 (full recipe: 100px x 50, VGG)": ("configs/mpse/phase1_dped.yaml", 2, ["--data.num_workers", "0"]),
    "reference recommender": ("configs/mpse/recommender.yaml", 1, []),
    "MPSE phase 2 feed-forward (demo)": ("configs/mpse/demo_phase2.yaml", 1, []),
    "MDIE 1 Sintel pretrain (demo)": ("configs/mdie/demo_intrinsic_pretrain.yaml", 1, []),
    "MDIE 2 self-supervised (demo)": ("configs/mdie/demo_self_supervised.yaml", 1, []),
    "MDIE 3 joint StarGAN (demo)": ("configs/mdie/demo_joint.yaml", 2, []),
    "MDIE 3 joint StarGAN (full: 128px x 16, G 64 ch)": ("configs/mdie/joint.yaml", 2, ["--data.num_workers", "0"]),
}


class BatchTimer(Callback):
    """Seconds of each training batch after ``warmup`` batches."""

    def __init__(self, warmup: int):
        self.warmup, self.times, self._start, self._seen = warmup, [], 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._seen += 1
        if self._seen > self.warmup:
            self.times.append(time.perf_counter() - self._start)


def measure_phase(config: str, steps_per_batch: int, extra: list[str], batches: int = 3, warmup: int = 1,
                  precision: str = "32-true", channels_last: bool = False) -> float:
    """Mean seconds per training batch (= per iteration) of a phase config."""
    with tempfile.TemporaryDirectory() as folder:
        cli = run_lightning(resolve_config_paths([
            "fit", "--config", config, *extra, "--trainer.max_steps", str(steps_per_batch * (batches + warmup)),
            "--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", folder, "--trainer.precision", precision,
            "--performance.channels_last", str(channels_last).lower(),
        ]), run=False)
        timer = BatchTimer(warmup)
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, cli.datamodule)
    return sum(timer.times) / len(timer.times)
