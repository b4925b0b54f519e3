"""LR halving counts iterations (generator updates) and survives a resume."""

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from callbacks import LRHalving
from test_phase1_module import tiny_model
from tiny_data import TinyPairs


class LRCurve(Callback):
    def __init__(self):
        self.curve = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.curve[pl_module.iteration] = [opt.param_groups[0]["lr"] for opt in trainer.optimizers]


def run(model, iterations, callbacks, ckpt_path=None, tmp_path=None):
    trainer = pl.Trainer(
        max_steps=2 * iterations, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=callbacks, accelerator="cpu", limit_val_batches=0,
    )
    trainer.fit(model, TinyPairs(), ckpt_path=ckpt_path)
    return trainer


def test_halves_every_optimizer_every_n_iterations():
    pl.seed_everything(0)
    curve = LRCurve()
    run(tiny_model(lr=1e-3), 7, [LRHalving(every_n_iterations=3), curve])
    assert [round(lrs[0] / 1e-3, 6) for it, lrs in sorted(curve.curve.items())] == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert all(g == d for g, d in curve.curve.values())  # G and D follow the same schedule


def test_resume_continues_the_same_schedule_and_iteration(tmp_path):
    pl.seed_everything(0)
    straight = LRCurve()
    run(tiny_model(lr=1e-3), 8, [LRHalving(every_n_iterations=3), straight])

    pl.seed_everything(0)
    first, halving = LRCurve(), LRHalving(every_n_iterations=3)
    trainer = run(tiny_model(lr=1e-3), 4, [halving, first])
    trainer.save_checkpoint(tmp_path / "it4.ckpt")
    assert halving.halvings == 1

    resumed_halving, second = LRHalving(every_n_iterations=3), LRCurve()
    model = tiny_model(lr=1e-3)
    run(model, 8, [resumed_halving, second], ckpt_path=tmp_path / "it4.ckpt")
    assert model.iteration == 8
    assert resumed_halving.halvings == 2  # restored 1, then one more at iteration 6 — not 1 + 2
    assert sorted(second.curve) == [5, 6, 7, 8]
    assert {it: lrs for it, lrs in second.curve.items()} == {it: straight.curve[it] for it in (5, 6, 7, 8)}


def test_rejects_nonsense_interval():
    with pytest.raises(ValueError, match="every_n_iterations"):
        LRHalving(every_n_iterations=0)
