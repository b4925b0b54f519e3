"""MPSE phase-2 losses: DPST's masked Gram style loss with region weights Λ, the Matting
Laplacian term and the Λ head, checked against hand computations on small tensors."""

import itertools

import numpy as np
import pytest
import torch

from datamodules.io import read_image
from lightning_modules.losses.matting_loss import MattingLoss, matting_laplacian, matting_loss
from lightning_modules.losses.style_loss import (
    RegionStyleLoss,
    masked_gram,
    region_areas,
    region_style_terms,
    region_weights,
    style_loss,
)
from lightning_modules.nets.lambda_head import LambdaHead


# ----------------------------------------------------------------------------- masked Gram


def test_masked_gram_matches_explicit_loops_with_a_partial_soft_mask():
    torch.manual_seed(0)
    b, c, h, w = 2, 3, 2, 3
    feats = torch.randn(b, c, h, w, dtype=torch.float64)
    mask = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 0.25, 1.0]], [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    expected = torch.zeros(b, c, c, dtype=torch.float64)
    for n, i, j in itertools.product(range(b), range(c), range(c)):
        total = sum(
            feats[n, i, y, x] * mask[n, y, x] * feats[n, j, y, x] * mask[n, y, x]
            for y in range(h)
            for x in range(w)
        )
        mean_mask = float(mask[n].sum()) / (h * w)
        expected[n, i, j] = total / (c * h * w * mean_mask)
    torch.testing.assert_close(masked_gram(feats, mask), expected)
    torch.testing.assert_close(masked_gram(feats, mask[:, None]), expected)  # (B, 1, h, w) masks too


def test_masked_gram_numbers():
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # C=2, h=1, w=2
    # (F⊙M)(F⊙M)ᵀ = [[1, 3], [3, 9]]; C·h·w·mean(M) = 2·1·2·0.5 = 2
    assert masked_gram(feats, torch.tensor([[[1.0, 0.0]]])).tolist() == [[[0.5, 1.5], [1.5, 4.5]]]
    # full mask: FFᵀ / (C·h·w) = [[5, 11], [11, 25]] / 4
    assert masked_gram(feats, torch.ones(1, 1, 2)).tolist() == [[[1.25, 2.75], [2.75, 6.25]]]
    # empty mask: not normalised by the area, and zero
    assert masked_gram(feats, torch.zeros(1, 1, 2)).tolist() == [[[0.0, 0.0], [0.0, 0.0]]]


def test_masked_gram_full_mask_is_the_plain_normalised_gram():
    feats = torch.randn(2, 5, 4, 6)
    flat = feats.flatten(2)
    plain = flat @ flat.transpose(1, 2) / (5 * 4 * 6)
    torch.testing.assert_close(masked_gram(feats, torch.ones(2, 4, 6)), plain)


def test_masked_gram_rejects_mismatched_mask():
    with pytest.raises(ValueError, match=r"\(2, 4, 6\) or \(2, 1, 4, 6\) mask"):
        masked_gram(torch.randn(2, 5, 4, 6), torch.ones(2, 4, 5))


# ----------------------------------------------------------------------------- region terms


def half_masks(batch, size, regions=3):
    """Region 0: left half, region 1: right half, region 2: empty."""
    masks = torch.zeros(batch, regions, size, size)
    masks[:, 0, :, : size // 2] = 1
    masks[:, 1, :, size // 2 :] = 1
    return masks


def test_region_terms_vanish_where_features_agree_and_ignore_the_outside():
    torch.manual_seed(0)
    out = {"a": torch.randn(2, 4, 8, 8), "b": torch.randn(2, 6, 4, 4)}
    ref = {name: f.clone() for name, f in out.items()}
    for f in ref.values():
        f[..., f.shape[-1] // 2 :] += 1.0  # R differs from O on the right half only
    masks = half_masks(2, 16)
    terms, valid = region_style_terms(out, ref, masks, masks)
    assert terms.shape == (2, 2, 3) and valid.shape == (2, 3)
    assert torch.all(terms[:, :, 0] == 0)  # left region: identical features
    assert torch.all(terms[:, :, 1] > 1e-3)  # right region differs
    # Changing O outside region 0 (the right half) leaves region 0's term exactly as it was.
    changed = {name: f.clone() for name, f in out.items()}
    for f in changed.values():
        f[..., f.shape[-1] // 2 :] = torch.randn_like(f[..., f.shape[-1] // 2 :])
    terms2, _ = region_style_terms(changed, ref, masks, masks)
    torch.testing.assert_close(terms2[:, :, 0], terms[:, :, 0], rtol=0, atol=0)
    assert not torch.allclose(terms2[:, :, 1], terms[:, :, 1])


def test_region_terms_value_with_different_sizes_for_o_and_r():
    torch.manual_seed(1)
    out = {"x": torch.randn(1, 3, 8, 8, dtype=torch.float64)}
    ref = {"x": torch.randn(1, 3, 6, 6, dtype=torch.float64)}
    out_masks, ref_masks = half_masks(1, 16), half_masks(1, 12)
    terms, valid = region_style_terms(out, ref, out_masks, ref_masks)
    # Region 0 by hand: the half masks pool (area) to exact half masks at the feature sizes.
    out_m = torch.zeros(1, 8, 8, dtype=torch.float64)
    out_m[..., :4] = 1
    ref_m = torch.zeros(1, 6, 6, dtype=torch.float64)
    ref_m[..., :3] = 1
    expected = (masked_gram(out["x"], out_m) - masked_gram(ref["x"], ref_m)).pow(2).mean()
    torch.testing.assert_close(terms[0, 0, 0], expected)
    assert valid.tolist() == [[True, True, False]]


def test_region_terms_use_area_downsampled_soft_masks():
    torch.manual_seed(2)
    feats = {"x": torch.randn(1, 2, 2, 2, dtype=torch.float64)}
    ref = {"x": torch.randn(1, 2, 2, 2, dtype=torch.float64)}
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    masks[0, 0, 0, 0] = 1  # a quarter of the top-left 2x2 block: soft mask 0.25 there
    soft = torch.tensor([[[0.25, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    terms, _ = region_style_terms(feats, ref, masks, masks, min_area=0.0)
    expected = (masked_gram(feats["x"], soft) - masked_gram(ref["x"], soft)).pow(2).mean()
    torch.testing.assert_close(terms[0, 0, 0], expected)


def test_region_terms_flag_regions_missing_on_either_side():
    feats = {"x": torch.randn(3, 2, 4, 4)}
    out_masks = torch.zeros(3, 2, 8, 8)
    ref_masks = torch.zeros(3, 2, 8, 8)
    out_masks[:, 0], ref_masks[:, 0] = 1, 1  # region 0 everywhere in both
    out_masks[0, 1, :2, :2] = 1  # region 1: sample 0 only in O,
    ref_masks[1, 1, :2, :2] = 1  # sample 1 only in R,
    out_masks[2, 1, :2, :2], ref_masks[2, 1, 4:, 4:] = 1, 1  # sample 2 in both
    terms, valid = region_style_terms(feats, {"x": torch.randn(3, 2, 4, 4)}, out_masks, ref_masks)
    assert valid.tolist() == [[True, False], [True, False], [True, True]]
    assert terms[0, 0, 1] == 0 and terms[1, 0, 1] == 0 and terms[2, 0, 1] > 0
    # A region below min_area (1 pixel of 64 < 5%) does not count.
    _, valid = region_style_terms(feats, feats, out_masks, ref_masks, min_area=0.05)
    assert valid[:, 1].tolist() == [False, False, True]
    _, valid = region_style_terms(feats, feats, out_masks, ref_masks, min_area=0.07)
    assert valid[:, 1].tolist() == [False, False, False]


def test_region_terms_reject_mismatched_layers():
    with pytest.raises(ValueError, match="same layers"):
        region_style_terms({"a": torch.randn(1, 2, 4, 4)}, {"b": torch.randn(1, 2, 4, 4)},
                           torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4))


# ----------------------------------------------------------------------------- Λ and Ls


def test_region_weights_sum_to_one_over_valid_regions():
    torch.manual_seed(3)
    logits, area = torch.randn(4, 5, 6) * 3, torch.rand(4, 6)
    valid = torch.rand(4, 6) > 0.4
    valid[:, 0] = True
    weights = region_weights(logits, area, valid)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5))
    assert torch.all(weights[~valid.unsqueeze(1).expand_as(weights)] == 0)
    assert torch.all(weights[valid.unsqueeze(1).expand_as(weights)] > 0)


def test_region_weights_with_equal_logits_are_softmax_of_area():
    area = torch.tensor([[0.5, 0.3, 0.2, 0.0]])
    valid = torch.tensor([[True, True, True, False]])
    c = 2.0
    weights = region_weights(torch.full((1, 3, 4), c), area, valid)
    expected = torch.softmax(c * area[:, :3], dim=-1)
    for layer in range(3):
        torch.testing.assert_close(weights[0, layer, :3], expected[0])
    assert torch.all(weights[..., 3] == 0)


def test_region_weights_zero_for_a_sample_without_valid_regions_and_finite_gradients():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    valid = torch.tensor([[False] * 4, [True, False, True, False]])
    weights = region_weights(logits, torch.rand(2, 4), valid)
    assert torch.all(weights[0] == 0)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3))
    (weights * torch.rand(2, 3, 4)).sum().backward()
    assert torch.isfinite(logits.grad).all() and torch.all(logits.grad[0] == 0)


def test_style_loss_value_and_module():
    torch.manual_seed(4)
    terms, weights = torch.rand(2, 3, 4), torch.rand(2, 3, 4)
    expected = sum(float((weights[b] * terms[b]).sum()) for b in range(2)) / 2
    assert float(style_loss(terms, weights)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one \\(B, L, R\\) shape"):
        style_loss(terms, weights[:, :2])

    out = {"a": torch.randn(2, 4, 8, 8), "b": torch.randn(2, 6, 4, 4)}
    ref = {"a": torch.randn(2, 4, 6, 6), "b": torch.randn(2, 6, 3, 3)}
    out_masks, ref_masks = half_masks(2, 16), half_masks(2, 12)
    logits = torch.randn(2, 2, 3)
    module = RegionStyleLoss()
    assert module.weight == 100.0
    loss, lam = module(out, ref, out_masks, ref_masks, logits, return_weights=True)
    terms, valid = region_style_terms(out, ref, out_masks, ref_masks)
    lam_expected = region_weights(logits, region_areas(out_masks), valid)
    torch.testing.assert_close(lam, lam_expected)
    torch.testing.assert_close(loss, style_loss(terms, lam_expected))
    torch.testing.assert_close(module(out, ref, out_masks, ref_masks, logits), loss)
    with pytest.raises(ValueError, match="logits"):
        module(out, ref, out_masks, ref_masks, torch.randn(2, 3, 3))


# ----------------------------------------------------------------------------- Λ head


def test_lambda_head_shape_and_initial_constant_logits():
    torch.manual_seed(5)
    head = LambdaHead(num_layers=5, num_regions=4)
    logits = head(torch.rand(3, 512, 7, 7) * 10, torch.rand(3, 512, 5, 6) * 10)
    assert logits.shape == (3, 5, 4)
    torch.testing.assert_close(logits, torch.ones_like(logits), rtol=0, atol=0.05)
    o, r = torch.rand(3, 512, 4, 4), torch.rand(3, 512, 2, 3)
    pooled = [o.mean((2, 3)), r.mean((2, 3))]
    torch.testing.assert_close(head(*pooled), head(o, r))  # pooled inputs
    torch.testing.assert_close(head(torch.cat(pooled, 1)), head(o, r))  # their concatenation
    with pytest.raises(ValueError, match="1024 pooled features"):
        head(torch.rand(3, 256, 2, 2), torch.rand(3, 512, 2, 2))


def test_lambda_head_gets_gradients_through_region_weights_and_style_loss():
    torch.manual_seed(6)
    head = LambdaHead(num_layers=2, num_regions=3, in_features=16, hidden=8)
    logits = head(torch.rand(2, 8, 3, 3), torch.rand(2, 8, 3, 3))
    area = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]])
    valid = area > 0
    loss = style_loss(torch.rand(2, 2, 3), region_weights(logits, area, valid))
    loss.backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- Matting Laplacian


def levin_laplacian(guide, eps, radius=1):
    """Levin et al.'s Matting Laplacian, dense, straight from the definition (row-major pixels)."""
    h, w, _ = guide.shape
    n, size = h * w, (2 * radius + 1) ** 2
    laplacian = np.zeros((n, n))
    for y, x in itertools.product(range(radius, h - radius), range(radius, w - radius)):
        ys, xs = np.mgrid[y - radius : y + radius + 1, x - radius : x + radius + 1]
        index = (ys * w + xs).ravel()
        colors = guide[ys, xs].reshape(size, 3)
        mu = colors.mean(0)
        cov = (colors - mu).T @ (colors - mu) / size  # biased covariance, as Levin's Σ_k
        inv = np.linalg.inv(cov + eps / size * np.eye(3))
        centred = colors - mu
        block = np.eye(size) - (1 + centred @ inv @ centred.T) / size
        laplacian[np.ix_(index, index)] += block
    return laplacian


@pytest.fixture(scope="module")
def guide(shared_dir):
    """A textured 32x32 crop (colour std ≈ 0.2) of a 100x100 DPED Canon patch, HxWx3 float32 in [0, 1]."""
    image = read_image(shared_dir / "data/dped/iphone/training_data/canon/0.png")
    return image[56:88, 68:100]


def test_matting_laplacian_is_levins_in_row_major_order():
    rng = np.random.default_rng(0)
    guide = rng.random((4, 5, 3))  # not square: a swapped x/y order would show
    laplacian = matting_laplacian(guide, eps=1e-3, dtype=torch.float64)
    assert laplacian.layout == torch.sparse_coo and laplacian.shape == (20, 20)
    np.testing.assert_allclose(laplacian.to_dense().numpy(), levin_laplacian(guide, 1e-3), atol=1e-9)
    assert matting_laplacian(guide).dtype == torch.float32


def test_matting_laplacian_of_a_photo_is_symmetric_with_zero_row_sums(guide):
    laplacian = matting_laplacian(guide, dtype=torch.float64)
    assert laplacian.shape == (32 * 32, 32 * 32)
    dense = laplacian.to_dense()
    scale = dense.abs().max()
    assert float((dense - dense.T).abs().max()) < 1e-10 * scale
    assert float(dense.sum(1).abs().max()) < 1e-10 * scale
    assert laplacian._nnz() <= 32 * 32 * 25  # 5x5 neighbourhoods, explicit zeros dropped


def test_matting_loss_vanishes_for_a_locally_affine_image_and_not_for_noise(guide):
    mix = torch.tensor([[0.8, 0.1, 0.0], [0.2, 0.6, 0.1], [-0.1, 0.3, 0.9]])
    bias = torch.tensor([0.05, -0.02, 0.1])
    g = torch.from_numpy(guide).permute(2, 0, 1)  # (3, H, W)
    affine = (torch.einsum("ck,khw->chw", mix, g) + bias[:, None, None])[None]
    noisy = affine + 0.02 * torch.randn(affine.shape, generator=torch.Generator().manual_seed(0))
    laplacian = matting_laplacian(guide)  # float32
    smooth, rough = float(matting_loss(affine, [laplacian])), float(matting_loss(noisy, [laplacian]))
    assert rough > 1e-2
    assert smooth < 1e-3 * rough
    # In float64 it is Levin's regulariser: at most ε·|a_c|² per window and channel.
    exact = float(matting_loss(affine.double(), [matting_laplacian(guide, dtype=torch.float64)]))
    assert 0 <= exact <= 1e-7 * 30 * 30 * float(mix.pow(2).sum()) * (1 + 1e-6)


def test_matting_loss_gradient_is_2_m_v():
    rng = np.random.default_rng(1)
    guides = [rng.random((4, 5, 3)), rng.random((4, 5, 3))]
    laplacians = [matting_laplacian(g, eps=1e-4, dtype=torch.float64) for g in guides]
    image = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: matting_loss(x, laplacians), (image,))
    matting_loss(image, laplacians).backward()
    for b in range(2):
        v = image[b].detach().reshape(3, 20).t()
        expected = (2 * laplacians[b].to_dense() @ v / 2).t().reshape(3, 4, 5)  # 1/2: batch mean
        torch.testing.assert_close(image.grad[b], expected)


def test_matting_loss_rejects_a_laplacian_of_another_size():
    laplacian = matting_laplacian(np.random.rand(4, 4, 3))
    with pytest.raises(ValueError, match=r"expected \(20, 20\) for a 4x5 image"):
        matting_loss(torch.rand(1, 3, 4, 5), [laplacian])
    with pytest.raises(ValueError, match="one Laplacian per image"):
        matting_loss(torch.rand(2, 3, 4, 4), [laplacian])


def test_matting_module_builds_laplacians_for_a_batch(guide):
    module = MattingLoss()
    assert (module.weight, module.eps, module.radius) == (1e4, 1e-7, 1)
    guides = torch.from_numpy(np.stack([guide[:8, :8], guide[8:16, :8]])).permute(0, 3, 1, 2)
    laplacians = module.laplacians(guides.requires_grad_())
    assert len(laplacians) == 2 and all(m.dtype == torch.float32 and not m.requires_grad for m in laplacians)
    torch.testing.assert_close(laplacians[1].to_dense(), matting_laplacian(guide[8:16, :8]).to_dense())
    image = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = module(image, laplacians)
    torch.testing.assert_close(loss, matting_loss(image, laplacians))
    loss.backward()
    assert image.grad.abs().sum() > 0
