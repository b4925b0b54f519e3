"""MDIE's losses against their formulas: si-MSE, LMSE, reconstruction, StarGAN's terms."""

import numpy as np
import pytest
import torch

from lightning_modules.losses import (
    IntrinsicReconstructionLoss,
    adversarial_d_loss,
    adversarial_g_loss,
    cycle_loss,
    gradient_penalty,
    lmse,
    masked_classification_loss,
    si_mse,
)


def test_si_mse_known_answer() -> None:
    p = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    t = torch.tensor([2.0, 2.0]).view(1, 1, 1, 2)
    # α = <p,t>/<p,p> = 6/5; errors (2 - 1.2)² and (2 - 2.4)², mean 0.4
    assert si_mse(p, t).item() == pytest.approx(0.4)


def test_si_mse_is_invariant_to_scaling_the_prediction() -> None:
    torch.manual_seed(0)
    p, t = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    base = si_mse(p, t)
    scales = torch.tensor([0.01, 3.0, 250.0]).view(3, 1, 1, 1)  # one scale per image
    assert si_mse(p * scales, t).item() == pytest.approx(base.item(), rel=1e-5)
    assert base.item() > 1e-3  # not trivially zero
    # ... but not to scaling the target (the score is in the target's units)
    assert si_mse(p, 2 * t).item() == pytest.approx(4 * base.item(), rel=1e-4)
    # ... and never above the plain MSE (α = 1 is one of the scales it minimises over)
    assert base.item() <= torch.mean((p - t) ** 2).item()


def test_si_mse_mask_scores_only_masked_pixels() -> None:
    t = torch.rand(1, 3, 8, 8)
    p = t.clone()
    p[..., :4] = torch.rand(1, 3, 8, 4)  # wrong on the left half only
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    assert si_mse(p, t, mask).item() < 1e-12 < si_mse(p, t).item()


def _lmse_reference(p: np.ndarray, t: np.ndarray, window: int) -> float:
    """The MIT-intrinsic `local_error` loop (windows of `window`, shift window//2)."""
    shift = window // 2
    ssq = total = 0.0
    for i in range(0, t.shape[1] - window + 1, shift):
        for j in range(0, t.shape[2] - window + 1, shift):
            tw, pw = t[:, i : i + window, j : j + window].ravel(), p[:, i : i + window, j : j + window].ravel()
            alpha = (tw @ pw) / max(pw @ pw, 1e-12)
            ssq += np.sum((tw - alpha * pw) ** 2)
            total += np.sum(tw**2)
    return ssq / total


def test_lmse_matches_the_reference_loop() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.random((3, 30, 42)), rng.random((3, 30, 42))
    ours = lmse(torch.from_numpy(p)[None].float(), torch.from_numpy(t)[None].float(), window=10).item()
    assert ours == pytest.approx(_lmse_reference(p, t, 10), rel=1e-5)


def test_lmse_bounds() -> None:
    t = torch.rand(2, 3, 40, 60)
    assert lmse(torch.zeros_like(t), t).item() == pytest.approx(1.0)
    assert lmse(5 * t, t).item() < 1e-9
    # Local scales: each window may be scaled differently and still score 0... within a window.
    assert lmse(t * torch.linspace(1, 2, 60), t).item() < lmse(torch.rand_like(t), t).item()


def test_reconstruction_loss_is_alpha_l1_plus_beta_l2() -> None:
    lq, lq_rec = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    hq, hq_rec = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    total, terms = IntrinsicReconstructionLoss(alpha=2.0, beta=3.0)(lq, lq_rec, hq, hq_rec)
    assert terms["rec_lq_l1"].item() == pytest.approx(0.5) and terms["rec_hq_l2"].item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(2 * 0.5 + 3 * 0.25)
    empty = torch.zeros(0, 3, 4, 4)
    total, terms = IntrinsicReconstructionLoss()(empty, empty, hq, hq_rec)  # a batch with no LQ image
    assert terms["rec_lq_l1"].item() == 0 and total.item() == pytest.approx(0.25)


def test_masked_classification_ignores_unknown_datasets() -> None:
    # A hand-built batch: one colour image (high), one texture image (low), one noise image (high).
    labels = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0]])
    mask = torch.eye(3)
    logits = torch.tensor([[2.0, 7.0, -7.0], [-5.0, -1.0, 4.0], [9.0, 3.0, 0.5]], requires_grad=True)
    loss = masked_classification_loss(logits, labels, mask)
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]), reduction="sum"
    ) / 3
    assert loss.item() == pytest.approx(known.item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[mask == 0] == 0) and torch.all(logits.grad[mask == 1] != 0)
    # Changing what D says about the unknown attributes changes nothing.
    other = logits.detach().clone()
    other[mask == 0] = torch.randn(6) * 10
    assert masked_classification_loss(other, labels, mask).item() == pytest.approx(loss.item())


def test_gradient_penalty_matches_its_formula() -> None:
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    # A linear critic D(x) = <w, x>: ∇D = w everywhere, so GP = (‖w‖₂ − 1)².
    w = torch.randn(3, 8, 8)
    linear = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    assert gradient_penalty(linear, real, fake).item() == pytest.approx((w.norm() - 1).pow(2).item(), rel=1e-5)
    # A quadratic critic D(x) = ½‖x‖²: ∇D = x̂, so GP = mean((‖x̂‖ − 1)²) at the same random ε.
    torch.manual_seed(3)
    gp = gradient_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real, fake)
    torch.manual_seed(3)
    eps = torch.rand(4, 1, 1, 1)
    mixed = eps * real + (1 - eps) * fake
    assert gp.item() == pytest.approx((mixed.flatten(1).norm(dim=1) - 1).pow(2).mean().item(), rel=1e-5)


def test_gradient_penalty_is_differentiable_for_the_critic() -> None:
    w = torch.randn(3, 4, 4, requires_grad=True)
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
    gp.backward()
    # d/dw (‖w‖ − 1)² = 2(‖w‖ − 1)·w/‖w‖
    norm = w.detach().norm()
    assert torch.allclose(w.grad, 2 * (norm - 1) * w.detach() / norm, atol=1e-5)


def test_adversarial_losses() -> None:
    real, fake = torch.tensor([[3.0, 1.0]]), torch.tensor([[-2.0, 0.5]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert adversarial_d_loss(real, fake, "gan").item() == pytest.approx(
        (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))).item()
    )
    assert adversarial_g_loss(fake, "gan").item() == pytest.approx(bce(fake, torch.ones_like(fake)).item())
    assert adversarial_d_loss(real, fake, "wgan-gp").item() == pytest.approx(fake.mean().item() - real.mean().item())
    assert adversarial_g_loss(fake, "wgan-gp").item() == pytest.approx(-fake.mean().item())


def test_cycle_loss_is_zero_for_an_identity_generator() -> None:
    x = torch.rand(2, 3, 8, 8)
    identity = lambda image, condition: image  # noqa: E731
    c, c_prime = torch.ones(2, 6), torch.zeros(2, 6)
    assert cycle_loss(x, identity(identity(x, c), c_prime)).item() == 0.0
    assert cycle_loss(x, x + 0.25).item() == pytest.approx(0.25)
