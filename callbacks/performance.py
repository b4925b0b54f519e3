"""Speed switches of a training run (memory layout, torch.compile) and the batch it really uses."""

from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info

from mobile2dslr.errors import UserError

__all__ = ["Performance", "batch_report"]


def batch_report(trainer: pl.Trainer, per_device: Optional[int]) -> str:
    """One line: the batch per process, the number of processes and the global batch."""
    if per_device is None:
        return f"batch: set by the DataModule; {trainer.world_size} process(es)"
    accumulate = trainer.accumulate_grad_batches
    devices = f"{trainer.num_devices} device(s) x {trainer.num_nodes} node(s)" if trainer.num_nodes > 1 else f"{trainer.num_devices} device(s)"
    total = per_device * trainer.world_size * accumulate
    extra = f" x {accumulate} accumulated" if accumulate > 1 else ""
    return f"batch: {per_device} per device x {devices}{extra} = {total} global"


class Performance(Callback):
    """Memory layout and compilation of the LightningModule's networks; logs the batch sizes.

    The ``mobile2dslr`` CLI always adds it, configured by the config's top-level
    ``performance`` group (``--performance.channels_last true``,
    ``--performance.compile_nets '[generator]'``). Mixed precision is Lightning's own
    switch: ``--trainer.precision bf16-mixed`` (or ``16-mixed`` with a gradient scaler on
    NVIDIA GPUs; manual optimisation goes through ``manual_backward`` and the wrapped
    optimizers, so Lightning scales and unscales there too).

    At the start of fit it logs one line with the batch per device and the global batch
    (per device x processes x gradient accumulation).

    Args:
        channels_last: store 4-D weights and training batches in channels-last (NHWC)
            layout, which GPU tensor cores and oneDNN's CPU convolutions prefer.
        compile_nets: attributes of the LightningModule to compile with ``torch.compile``
            (e.g. ``[generator, discriminator]``); compiled in place, so checkpoints keep
            their keys. The first steps are slow while the graphs compile.
        compile_mode: ``torch.compile`` mode (``default``, ``reduce-overhead``,
            ``max-autotune``); ``None`` for the default.
    """

    def __init__(self, channels_last: bool = False, compile_nets: list[str] = [], compile_mode: Optional[str] = None):  # noqa: B006
        self.channels_last = channels_last
        self.compile_nets = list(compile_nets)
        self.compile_mode = compile_mode
        self._prepared = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._prepared:
            return
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        for name in self.compile_nets:
            net = getattr(pl_module, name, None)
            if not isinstance(net, torch.nn.Module):
                children = ", ".join(n for n, _ in pl_module.named_children())
                raise UserError(f"--performance.compile_nets: {type(pl_module).__name__} has no network {name!r} (it has: {children})")
            net.compile(mode=self.compile_mode)
        self._prepared = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        per_device = getattr(trainer.datamodule, "batch_size", None) if trainer.datamodule is not None else None
        switches = [f"precision {trainer.precision}"]
        if self.channels_last:
            switches.append("channels_last")
        if self.compile_nets:
            switches.append(f"compiled: {', '.join(self.compile_nets)}")
        rank_zero_info(f"{batch_report(trainer, per_device)}; {', '.join(switches)}")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self.channels_last and isinstance(batch, dict):
            for key, value in batch.items():
                if isinstance(value, torch.Tensor) and value.ndim == 4:
                    batch[key] = value.contiguous(memory_format=torch.channels_last)
