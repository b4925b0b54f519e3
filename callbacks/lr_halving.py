"""Halve every optimizer's learning rate every N iterations (DPED: every 10k)."""

from typing import Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

__all__ = ["LRHalving"]


class LRHalving(Callback):
    """Multiply every optimizer's LR by ``factor`` each ``every_n_iterations`` iterations.

    The ``mobile2dslr`` CLI always adds it, configured by the config's top-level
    ``lr_halving`` group (``--lr_halving.every_n_iterations 10000``); without an
    interval it only logs the LRs.

    Iterations are the LightningModule's ``iteration`` attribute (generator updates),
    not Lightning's ``global_step``, which counts every optimizer's steps. The number
    of halvings done is kept in the checkpoint, and the optimizers' LRs are restored
    with their state, so a resumed run continues the same schedule. The current LRs are
    logged as ``lr/<optimizer name>``.

    Args:
        every_n_iterations: iterations between two halvings (10000 in DPED+); ``None``
            never changes the LR.
        factor: the multiplier (0.5 halves).
    """

    def __init__(self, every_n_iterations: Optional[int] = None, factor: float = 0.5):
        if every_n_iterations is not None and every_n_iterations < 1:
            raise ValueError(f"LRHalving: every_n_iterations must be >= 1, got {every_n_iterations}")
        self.every_n_iterations = every_n_iterations
        self.factor = factor
        self.halvings = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        due = int(pl_module.iteration) // self.every_n_iterations if self.every_n_iterations else 0
        while self.halvings < due:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= self.factor
            self.halvings += 1
        names = getattr(pl_module, "optimizer_names", ())
        for index, optimizer in enumerate(trainer.optimizers):
            name = names[index] if index < len(names) else str(index)
            pl_module.log(f"lr/{name}", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)

    def state_dict(self) -> dict:
        return {"halvings": self.halvings, "every_n_iterations": self.every_n_iterations, "factor": self.factor}

    def load_state_dict(self, state_dict: dict) -> None:
        self.halvings = int(state_dict["halvings"])
