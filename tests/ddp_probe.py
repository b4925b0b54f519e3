"""Callback for the DDP test: each rank saves its parameters at the end of training."""

import os
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback


class SaveRankParameters(Callback):
    """Write ``<DDP_PROBE_DIR>/rank<N>.pt`` with the rank's weights and iteration (or global step)."""

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        iteration = getattr(pl_module, "iteration", trainer.global_step)
        torch.save({"state": state, "iteration": iteration}, Path(os.environ["DDP_PROBE_DIR"]) / f"rank{trainer.global_rank}.pt")
