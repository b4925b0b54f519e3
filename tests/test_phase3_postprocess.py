"""MPSE phase 3: RMSHE, gamma, region strength and the regional post-processing module."""

import json
import math

import kornia
import numpy as np
import pytest
import torch
from skimage import exposure

from datamodules.io import read_image
from lightning_modules.phase3_postprocess import RegionalEqualization, gamma_correct, is_dark, region_strength, rmshe


def photo(shared_dir, kind: str = "low", index: int = 0) -> torch.Tensor:
    """A LOL photo as (1, 3, 200, 300) (every other pixel); ``low`` ones are dark, ``high`` ones normally lit."""
    path = sorted((shared_dir / "data/lowlight/our485" / kind).glob("*.png"))[index]
    return torch.from_numpy(read_image(path)[::2, ::2].copy()).permute(2, 0, 1).unsqueeze(0)


def luma(image: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_ycbcr(image)[:, :1]


def levels8(image: torch.Tensor) -> torch.Tensor:
    """Luminance quantised to 8-bit levels, as (B, 1, H, W) values k/255."""
    return (luma(image) * 255).round() / 255


# A known histogram (levels of 8-bit values): 10 x4, 50 x2, 200 x1, 250 x1; mean 73.75.
KNOWN = torch.tensor([10, 10, 10, 10, 50, 50, 200, 250], dtype=torch.float32).view(1, 1, 2, 4) / 255
# Worked by hand, in levels (divide by 255):
# depth 0, one histogram over [0, 255]: 255 * CDF = 255 * (4/8, 6/8, 7/8, 8/8).
# depth 1, split at floor(73.75) = 73: [0, 73] holds 10 x4, 50 x2 → 73 * (4/6, 6/6);
#   [74, 255] holds 200, 250 → 74 + 181 * (1/2, 2/2).
# depth 2: [0, 73] splits at floor(140/6) = 23 → [0, 23] (10 → 23), [24, 73] (50 → 73);
#   [74, 255] splits at 225 → [74, 225] (200 → 225), [226, 255] (250 → 255).
EXPECTED = {
    0: [255 * 4 / 8] * 4 + [255 * 6 / 8] * 2 + [255 * 7 / 8, 255.0],
    1: [73 * 4 / 6] * 4 + [73.0] * 2 + [74 + 181 / 2, 255.0],
    2: [23.0] * 4 + [73.0] * 2 + [225.0, 255.0],
}


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_rmshe_maps_a_known_histogram_as_worked_by_hand(depth):
    out = rmshe(KNOWN, depth=depth) * 255
    assert out.flatten().tolist() == pytest.approx(EXPECTED[depth], abs=1e-3)


def test_rmshe_depth0_is_textbook_he_on_a_photo(shared_dir):
    y = levels8(photo(shared_dir))
    k = (y * 255).round().long().flatten().numpy()
    cdf = np.cumsum(np.bincount(k, minlength=256)) / k.size  # s_k = (L-1) cdf(k), here /(L-1)
    np.testing.assert_allclose(rmshe(y, depth=0).flatten().numpy(), cdf[k], atol=1e-5)


def test_rmshe_depth0_close_to_skimage_equalize_hist(shared_dir):
    y = luma(photo(shared_dir, "high"))
    y = (y - y.min()) / (y.max() - y.min())  # skimage bins [min, max]; ours [0, 1]: make them the same
    expected = exposure.equalize_hist(y[0, 0].numpy(), nbins=256)
    diff = np.abs(rmshe(y, depth=0)[0, 0].numpy() - expected)
    # Bin edges differ by half a bin (skimage: edges i/256, ours: centres k/255).
    assert diff.mean() < 0.005 and diff.max() < 0.02


@pytest.mark.parametrize("depth", [1, 2])
def test_rmshe_keeps_pixels_on_their_side_of_the_mean(shared_dir, depth):
    y = levels8(photo(shared_dir))
    k = (y * 255).round()
    mean = k.mean()  # level units; depth 1 splits here, depth 2 too (then again inside)
    out = rmshe(y, depth=depth) * 255
    assert (out[k <= mean] <= mean + 1e-3).all() and (out[k > mean] > mean).all()
    assert torch.all(out.flatten()[k.flatten().argsort()].diff() >= -1e-3)  # non-decreasing mapping


def test_rmshe_preserves_brightness_better_than_he_on_a_dark_photo(shared_dir):
    y = levels8(photo(shared_dir))
    shift = {depth: float((rmshe(y, depth=depth).mean() - y.mean()).abs()) for depth in (0, 1, 2)}
    assert y.mean() < 0.1 and shift[0] > 0.3  # HE drags a dark photo to mid-grey
    assert shift[2] < shift[1] < shift[0] and shift[2] < 0.25 * shift[0]


def test_rmshe_histogram_and_mapping_only_inside_the_mask(shared_dir):
    y = luma(photo(shared_dir))[..., :64, :96]
    mask = torch.zeros_like(y, dtype=torch.bool)
    mask[..., 10:50, 20:70] = True
    out = rmshe(y, mask=mask)
    assert torch.equal(out[~mask], y[~mask])
    alone = rmshe(y[mask].view(1, 1, 1, -1))  # the masked pixels as an image of their own
    torch.testing.assert_close(out[mask], alone.flatten())
    torch.testing.assert_close(rmshe(y, mask=mask.float()), out)


def test_rmshe_batch_equals_each_alone(shared_dir):
    y = torch.cat([luma(photo(shared_dir, "low", 1)), luma(photo(shared_dir, "high", 2))])
    out = rmshe(y, depth=2)
    torch.testing.assert_close(out, torch.cat([rmshe(y[:1]), rmshe(y[1:])]), rtol=0, atol=1e-6)


def test_rmshe_rejects_bad_shapes_and_args():
    with pytest.raises(ValueError, match="B, 1, H, W"):
        rmshe(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        rmshe(torch.rand(1, 1, 4, 4), mask=torch.ones(1, 1, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="depth"):
        rmshe(torch.rand(1, 1, 4, 4), depth=-1)


def test_gamma_correct_is_exact():
    x = torch.rand(2, 3, 5, 5) * 1.4 - 0.2
    assert torch.equal(gamma_correct(x), x.clamp(0, 1) ** (1 / 2.2))
    root_half = torch.tensor(0.5).sqrt().item()
    assert gamma_correct(torch.tensor([0.0, 0.25, 0.5, 1.0]), 0.5).tolist() == [0.0, 0.5, root_half, 1.0]
    with pytest.raises(ValueError):
        gamma_correct(x, 0.0)


def test_is_dark_uses_rec601_mean_luminance(shared_dir):
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0  # luminance 0.299
    assert is_dark(red, 0.3).tolist() == [True] and is_dark(red, 0.29).tolist() == [False]
    images = torch.cat([photo(shared_dir, "low"), photo(shared_dir, "high")])
    assert is_dark(images, 0.2).tolist() == [True, False]
    assert is_dark(luma(images), 0.2).tolist() == [True, False]


def test_region_strength():
    weights = torch.tensor([[[0.1, 0.3, 0.6], [0.3, 0.3, 0.4]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(region_strength(weights), torch.tensor([[0.4, 0.6, 1.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="B, L, R"):
        region_strength(torch.ones(2, 3))


def halves(image: torch.Tensor) -> torch.Tensor:
    """Two soft masks: left half, right half."""
    masks = torch.zeros(image.shape[0], 2, *image.shape[-2:])
    width = image.shape[-1]
    masks[:, 0, :, : width // 2] = 0.9  # soft values: the argmax decides
    masks[:, 1, :, : width // 2] = 0.1
    masks[:, 1, :, width // 2 :] = 1.0
    return masks


@pytest.mark.parametrize("color_space", ["ycbcr", "lab"])
def test_regions_blend_by_strength_and_respect_masks(shared_dir, color_space):
    image = photo(shared_dir)[..., :128, :192]
    post = RegionalEqualization(gamma="off", color_space=color_space)
    masks, width = halves(image), image.shape[-1] // 2
    out = post(image, masks, torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(out[..., :width], image[..., :width], rtol=0, atol=1e-4)  # strength 0: unchanged
    if color_space == "ycbcr":
        y = luma(image)
        right = torch.zeros_like(y, dtype=torch.bool)
        right[..., width:] = True
        expected = rmshe(y, mask=right)  # the right region's own histogram
        check_luma(out, expected, right)
        check_luma(post(image, masks, torch.tensor([[0.0, 0.5]])), (y + expected) / 2, right)
        check_luma(post(image), rmshe(y), torch.ones_like(right))  # no masks: one region, strength 1


def check_luma(out: torch.Tensor, expected: torch.Tensor, where: torch.Tensor) -> None:
    """Output luminance is ``expected`` where no RGB channel was clipped (clipping changes Y)."""
    where = where & ((out > 1e-4) & (out < 1 - 1e-4)).all(1, keepdim=True)
    assert where.float().mean() > 0.3
    torch.testing.assert_close(luma(out)[where], expected[where], rtol=0, atol=1e-4)


def test_low_resolution_masks_and_uncovered_pixels():
    image = torch.rand(1, 3, 8, 8)
    small = torch.zeros(1, 2, 2, 2)
    small[:, 0, 0] = 1.0  # top half: region 0, bottom-left: region 1, bottom-right: no region
    small[:, 1, 1, 0] = 1.0
    full = small.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    post = RegionalEqualization(gamma="off")
    out = post(image, small)
    torch.testing.assert_close(out, post(image, full))
    torch.testing.assert_close(out[..., 4:, 4:], image[..., 4:, 4:], rtol=0, atol=1e-5)
    assert (out[..., :4, :] - image[..., :4, :]).abs().max() > 0.05


def test_auto_gamma_for_dark_images_only(shared_dir):
    dark, bright = photo(shared_dir, "low"), photo(shared_dir, "high")
    equalized = RegionalEqualization(gamma="off")
    auto = RegionalEqualization(gamma="auto")
    torch.testing.assert_close(auto(dark), gamma_correct(equalized(dark)))
    torch.testing.assert_close(auto(bright), equalized(bright))
    torch.testing.assert_close(RegionalEqualization(gamma="on")(bright), gamma_correct(equalized(bright)))
    gamma_only = RegionalEqualization(equalize=False, gamma="auto")
    assert torch.equal(gamma_only(dark), gamma_correct(dark)) and torch.equal(gamma_only(bright), bright)


def test_chroma_is_kept(shared_dir):
    image = photo(shared_dir)
    out = RegionalEqualization(gamma="off")(image)
    hsv_in, hsv_out = kornia.color.rgb_to_hsv(image), kornia.color.rgb_to_hsv(out)
    # Coloured pixels whose output is not clipped (RGB shifts by the same amount: hue is exact).
    keep = (hsv_in[:, 1] > 0.2) & (hsv_in[:, 2] > 0.05) & (out > 1e-3).all(1) & (out < 1 - 1e-3).all(1)
    assert keep.sum() > 1000
    hue_diff = torch.remainder(hsv_out[:, 0] - hsv_in[:, 0] + math.pi, 2 * math.pi) - math.pi
    assert hue_diff[keep].abs().max() < 1e-3
    lab = RegionalEqualization(gamma="off", color_space="lab")(image)
    ab_in, ab_out = kornia.color.rgb_to_lab(image)[:, 1:], kornia.color.rgb_to_lab(lab)[:, 1:]
    inside = ((lab > 1e-3) & (lab < 1 - 1e-3)).all(1, keepdim=True).expand_as(ab_in)
    assert (ab_out - ab_in)[inside].abs().max() < 0.05


def test_batch_equals_each_alone(shared_dir):
    images = torch.cat([photo(shared_dir, "low", 3), photo(shared_dir, "high", 4)])
    masks = halves(images)
    masks[1] = masks[1].flip(-1)
    strength = torch.tensor([[0.3, 1.0], [1.0, 0.6]])
    post = RegionalEqualization(gamma="auto")
    out = post(images, masks, strength)
    alone = torch.cat([post(images[i : i + 1], masks[i : i + 1], strength[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(out, alone, rtol=0, atol=1e-6)
    assert 0 <= out.min() and out.max() <= 1


def test_module_rejects_bad_inputs():
    post = RegionalEqualization()
    with pytest.raises(ValueError, match="B, 3, H, W"):
        post(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="strength"):
        post(torch.rand(1, 3, 4, 4), torch.ones(1, 2, 4, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="region_masks"):
        post(torch.rand(2, 3, 4, 4), torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match="gamma"):
        RegionalEqualization(gamma="yes")


def test_configured_by_class_path():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--post", type=RegionalEqualization)
    class_path = "lightning_modules.phase3_postprocess.RegionalEqualization"
    spec = {"class_path": class_path, "init_args": {"gamma": "on", "depth": 1}}
    config = parser.parse_args(["--post", json.dumps(spec)])
    post = parser.instantiate_classes(config).post
    assert isinstance(post, RegionalEqualization) and post.gamma == "on" and post.depth == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(shared_dir):
    images = torch.cat([photo(shared_dir, "low"), photo(shared_dir, "high")])
    masks, strength = halves(images), torch.tensor([[0.5, 1.0], [1.0, 0.2]])
    post = RegionalEqualization()
    out = post(images.cuda(), masks.cuda(), strength.cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), post(images, masks, strength), rtol=0, atol=1e-4)
