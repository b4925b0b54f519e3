"""DPED+ LightningModule: manual optimisation, learning, iterations, NaN guard."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from lightning_modules import DPEDPlus
from lightning_modules.losses import PixelContentLoss, VGGContentLoss
from lightning_modules.nets import DPEDDiscriminator, DPEDGenerator
from tiny_data import TinyPairs


def tiny_model(content=None, lr=2e-3, **kwargs):
    return DPEDPlus(
        generator=DPEDGenerator(width=8, blocks=1),
        discriminator=DPEDDiscriminator(patch_size=32),
        content_loss=content or PixelContentLoss("mse"),
        lr=lr,
        **kwargs,
    )


class Record(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        m = trainer.callback_metrics
        self.rows.append({k: float(m[k]) for k in ("train/content", "train/color", "train/loss_d")} | {"it": pl_module.iteration})


def trainer(max_steps, callbacks=(), **kwargs):
    return pl.Trainer(
        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=list(callbacks), accelerator="cpu", num_sanity_val_steps=0,
        limit_val_batches=0, **kwargs,
    )


@pytest.mark.parametrize("content", ["mse", "vgg"])
def test_tiny_overfit_lowers_the_generator_losses(content):
    pl.seed_everything(0)
    loss = PixelContentLoss("mse") if content == "mse" else VGGContentLoss()
    model, record = tiny_model(loss), Record()
    trainer(2 * 60, [record]).fit(model, TinyPairs())
    first, last = record.rows[:5], record.rows[-5:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "train/content") < 0.5 * mean(first, "train/content")
    if content == "mse":  # relu5_4 of 32x32 patches is 2x2: it says little about colour
        assert mean(last, "train/color") < 0.5 * mean(first, "train/color")


def test_one_iteration_is_one_generator_and_one_discriminator_step():
    pl.seed_everything(0)
    model = tiny_model()
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    t = trainer(2 * 3)
    t.fit(model, TinyPairs())
    assert model.iteration == 3 and t.global_step == 6
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()) if a.numel() > 1)
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))
    assert isinstance(t.optimizers[0], torch.optim.Adam) and t.optimizers[0].param_groups[0]["lr"] == 2e-3


def test_discriminator_learns_to_tell_dslr_from_enhanced():
    pl.seed_everything(0)
    model = tiny_model(lr=0.0, discriminator_lr=1e-4)  # a frozen G: D's task stays the same
    record = Record()
    trainer(2 * 60, [record]).fit(model, TinyPairs(batch_size=8))
    first = sum(r["train/loss_d"] for r in record.rows[:5]) / 5
    last = sum(r["train/loss_d"] for r in record.rows[-5:]) / 5
    assert last < 0.2 * first


def test_nan_loss_stops_before_the_step_and_names_iteration_and_loss():
    pl.seed_everything(0)
    model = tiny_model()

    class Poison(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.iteration == 2:
                batch["hq"][:] = float("nan")

    before = None

    class Snapshot(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            nonlocal before
            before = [p.detach().clone() for p in pl_module.generator.parameters()]

    with pytest.raises(FloatingPointError, match=r"iteration 3: generator loss is nan \(content=nan, color=nan"):
        trainer(2 * 10, [Poison(), Snapshot()]).fit(model, TinyPairs())
    assert all(torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_discriminator_patch_size_must_match_the_data():
    from mobile2dslr.errors import UserError

    with pytest.raises(UserError, match="--model.discriminator.patch_size 32"):
        trainer(2).fit(DPEDPlus(generator=DPEDGenerator(width=4, blocks=1), content_loss=PixelContentLoss()), TinyPairs())


def test_validation_returns_clipped_output_and_predict_names():
    model = tiny_model().eval()
    batch = {"lq": torch.rand(1, 3, 32, 32), "hq": torch.rand(1, 3, 32, 32), "name": ["x"]}
    out = model.validation_step(batch, 0)
    assert out["output"].min() >= 0 and out["output"].max() <= 1 and out["hq"] is batch["hq"]
    assert model.predict_step(batch, 0)["name"] == ["x"]
