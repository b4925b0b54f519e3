"""MDIE's LightningModules: the Sintel pretraining learns, the joint StarGAN counts and masks right."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.io import read_image
from lightning_modules import MDIE, IntrinsicPretrain, IntrinsicSelfSupervised
from lightning_modules.losses import si_mse
from lightning_modules.nets import IntrinsicComposer, IntrinsicDecomposer, StarGANDiscriminator, StarGANGenerator
from tiny_data import TinyDomains

SMALL = dict(widths=(8, 16, 32, 64, 128))


def _sintel_frames(shared_dir: Path, frames=("0001", "0005"), size=(32, 64)) -> dict[str, torch.Tensor]:
    folder = shared_dir / "data/sintel/data/MPI"
    maps = {}
    for key, prefix in (("image", "image"), ("albedo", "gt_albedo"), ("shading", "gt_shading")):
        stack = torch.stack([torch.from_numpy(read_image(folder / f"{prefix}{f}.png")).permute(2, 0, 1) for f in frames])
        maps[key] = F.interpolate(stack, size=size, mode="area")
    return maps


def test_tiny_overfit_on_two_sintel_frames_lowers_albedo_si_mse(shared_dir: Path) -> None:
    torch.manual_seed(0)
    batch = _sintel_frames(shared_dir)
    model = IntrinsicPretrain(IntrinsicDecomposer(**SMALL), IntrinsicComposer(**SMALL), lr=2e-3)
    optimizer = model.configure_optimizers()
    model.train()

    def albedo_error() -> float:
        model.eval()
        with torch.no_grad():
            value = si_mse(model.decomposer(batch["image"])[0], batch["albedo"]).item()
        model.train()
        return value

    before, losses = albedo_error(), []
    for _ in range(30):
        albedo, shading, recomposed = model(batch["image"])
        loss = si_mse(albedo, batch["albedo"]) + si_mse(shading, batch["shading"]) + F.mse_loss(recomposed, batch["image"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = albedo_error()
    assert after < 0.7 * before, (before, after)  # measured: 0.029 → 0.016
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])


def test_pretrain_logs_scale_invariant_scores(shared_dir: Path) -> None:
    batch = _sintel_frames(shared_dir, frames=("0003",))
    model = IntrinsicPretrain(IntrinsicDecomposer(**SMALL), IntrinsicComposer(**SMALL)).eval()
    logged = {}
    model.log_dict = lambda values, **kwargs: logged.update(values)  # no Trainer needed
    out = model.validation_step({**batch, "name": ["0003"]}, 0)
    assert {"val/albedo_si_mse", "val/shading_si_mse", "val/albedo_lmse", "val/shading_lmse", "val/reconstruction_mse"} <= set(logged)
    assert all(torch.isfinite(v) and v >= 0 for v in logged.values())
    assert len(out["panels"]) == 6 and all(p.shape == batch["image"].shape for p in out["panels"])
    assert all(0 <= p.min() and p.max() <= 1 for p in out["panels"][:4])


def test_self_supervised_stage_starts_from_the_pretraining(tmp_path: Path) -> None:
    pre = IntrinsicPretrain(IntrinsicDecomposer(**SMALL), IntrinsicComposer(**SMALL))
    torch.save({"state_dict": pre.state_dict()}, tmp_path / "pre.ckpt")
    stage = IntrinsicSelfSupervised(IntrinsicDecomposer(**SMALL), IntrinsicComposer(**SMALL), init_from=str(tmp_path / "pre.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(pre.state_dict().values(), stage.state_dict().values()))
    assert "init_from" not in stage.hparams
    lq, ref = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    total, terms, _ = stage._reconstruct({"lq": lq, "ref": ref})
    _, _, lq_rec = stage(lq)
    _, _, hq_rec = stage(ref)
    assert terms["rec_lq_l1"].item() == pytest.approx((lq - lq_rec).abs().mean().item(), rel=1e-5)
    assert terms["rec_hq_l2"].item() == pytest.approx(((ref - hq_rec) ** 2).mean().item(), rel=1e-5)
    assert total.item() == pytest.approx(terms["rec_lq_l1"].item() + terms["rec_hq_l2"].item(), rel=1e-5)


class _ExactIntrinsics(nn.Module):
    """F(I) = (I, 1): reconstructs exactly through the product below."""

    size_multiple = 1

    def forward(self, image):
        return image, torch.ones_like(image)


class _Product(nn.Module):
    size_multiple = 1

    def forward(self, albedo, shading):
        return albedo * shading


class _Identity(nn.Module):
    def forward(self, intrinsics, condition):
        return intrinsics


def _tiny_mdie(**kwargs) -> MDIE:
    return MDIE(
        IntrinsicDecomposer(widths=(4, 8)), IntrinsicComposer(widths=(4, 8)),
        StarGANGenerator(width=4, residual_blocks=1), StarGANDiscriminator(image_size=32, width=4, repeat_num=3), **kwargs
    )


def test_cycle_and_reconstruction_vanish_for_identity_translation() -> None:
    model = MDIE(_ExactIntrinsics(), _Product(), _Identity(), StarGANDiscriminator(image_size=16, width=4, repeat_num=2))
    image = torch.rand(4, 3, 16, 16)
    mask, label = torch.eye(3)[[0, 1, 2, 0]], torch.eye(3)[[0, 1, 2, 0]] * torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    target, c_org, c_trg = model.conditions(label, mask)
    terms = model.generator_terms(image, label, mask, target, c_org, model.translate_batch(image, c_trg))
    assert terms["cycle"].item() == 0.0 and terms["rec_lq_l1"].item() == 0.0 and terms["rec_hq_l2"].item() == 0.0
    # A generator that changes its input breaks the cycle.
    model.generator = StarGANGenerator(width=4, residual_blocks=1)
    nn.init.normal_(model.generator.output.weight, std=0.1)
    assert model.generator_terms(image, label, mask, target, c_org, model.translate_batch(image, c_trg))["cycle"].item() > 1e-3


def test_targets_keep_the_mask_and_only_flip_the_known_attribute() -> None:
    model = _tiny_mdie()
    mask = torch.eye(3)[torch.randint(0, 3, (64,))]
    label = mask * torch.randint(0, 2, (64, 1)).float()
    target, c_org, c_trg = model.conditions(label, mask)
    assert torch.all(target * (1 - mask) == 0) and 0 < target.sum() < 64
    assert torch.equal(c_org[:, 3:], mask) and torch.equal(c_trg[:, 3:], mask) and torch.equal(c_org[:, :3], label)


class _FixedCritic(nn.Module):
    """A discriminator whose class logits are fixed: only the mask decides what counts."""

    patch_size = 16

    def __init__(self, logits):
        super().__init__()
        self.logits, self.w = logits, nn.Parameter(torch.zeros(()))

    def forward(self, image):
        return image.mean((1, 2, 3), keepdim=True) + self.w, self.logits[: image.shape[0]] + self.w


def test_discriminator_classification_counts_only_the_masked_attribute() -> None:
    logits = torch.tensor([[3.0, -9.0, 9.0], [9.0, -2.0, -9.0]])
    model = MDIE(_ExactIntrinsics(), _Product(), _Identity(), _FixedCritic(logits))
    label, mask = torch.tensor([[1.0, 0, 0], [0, 0, 0]]), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    image = torch.rand(2, 3, 16, 16)
    terms, _ = model.discriminator_terms(image, label, mask, model.translate_batch(image, torch.cat([label, mask], 1))["fake"])
    expected = (F.softplus(torch.tensor(-3.0)) + F.softplus(torch.tensor(-2.0))).item() / 2  # BCE of the two known bits
    assert terms["d_cls"].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("adversarial, n_critic", [("gan", 1), ("wgan-gp", 2)])
def test_joint_training_counts_generator_updates_as_iterations(tmp_path: Path, adversarial: str, n_critic: int) -> None:
    pl.seed_everything(0)
    model = _tiny_mdie(adversarial=adversarial, n_critic=n_critic)
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    f_before = [p.detach().clone() for p in model.decomposer.parameters()]
    data = TinyDomains(patch_size=32, batch_size=3, length=24)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert model.critic_steps == 4 and model.iteration == 4 // n_critic
    assert trainer.global_step == 4 + 4 // n_critic  # every optimizer step counts in Lightning's global_step
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss_d"]) and torch.isfinite(metrics["train/loss_g"])
    assert ("train/gp" in metrics) == (adversarial == "wgan-gp")
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(f_before, model.decomposer.parameters()))  # F fine-tuned jointly
    # The iteration survives a checkpoint.
    trainer.save_checkpoint(tmp_path / "mdie.ckpt")
    restored = MDIE.load_from_checkpoint(tmp_path / "mdie.ckpt", decomposer=IntrinsicDecomposer(widths=(4, 8)),
                                         composer=IntrinsicComposer(widths=(4, 8)), generator=StarGANGenerator(width=4, residual_blocks=1),
                                         discriminator=StarGANDiscriminator(image_size=32, width=4, repeat_num=3))
    assert restored.iteration == model.iteration and restored.critic_steps == 4


def test_intrinsic_lr_zero_freezes_f_and_f_prime(tmp_path: Path) -> None:
    pl.seed_everything(0)
    model = _tiny_mdie(intrinsic_lr=0.0)
    f_before = [p.detach().clone() for p in model.decomposer.state_dict().values()]
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, TinyDomains(patch_size=32, batch_size=3, length=12))
    assert all(torch.equal(a, b) for a, b in zip(f_before, model.decomposer.state_dict().values()))  # BN statistics too


def test_patch_size_mismatch_is_one_clear_error(tmp_path: Path) -> None:
    from mobile2dslr.errors import UserError

    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(UserError, match="image_size 16"):
        trainer.fit(_tiny_mdie(), TinyDomains(patch_size=16, batch_size=2, length=4))
