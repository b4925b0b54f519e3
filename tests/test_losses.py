"""Phase-1 losses against DPED's formulas (train_model.py / utils.py), on small tensors."""

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import torch

from lightning_modules.losses import (
    ColorLoss,
    PixelContentLoss,
    VGGContentLoss,
    color_loss,
    discriminator_loss,
    dped_gauss_kernel,
    texture_loss,
    to_dped_gray,
    tv_loss,
)
from lightning_modules.nets import VGG19Features


def dped_kernel_2d(size=21, nsig=3.0):
    """DPED's utils.gauss_kernel, transcribed with numpy/scipy."""
    interval = (2 * nsig + 1.0) / size
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
    kern1d = np.diff(scipy.stats.norm.cdf(x))
    raw = np.sqrt(np.outer(kern1d, kern1d))
    return raw / raw.sum()


def test_gauss_kernel_is_dpeds_2d_kernel_factored():
    k = dped_gauss_kernel(21, 3).double().numpy()
    np.testing.assert_allclose(np.outer(k, k), dped_kernel_2d(), rtol=1e-6, atol=1e-9)
    # It is much wider than a sigma-3 Gaussian: the sqrt widens it.
    taps = np.arange(-10, 11)
    assert np.sqrt((k * taps**2).sum()) > 4.0


def test_color_loss_matches_dped_formula():
    torch.manual_seed(0)
    enhanced, target = torch.rand(2, 3, 24, 20), torch.rand(2, 3, 24, 20)
    kernel = dped_kernel_2d()
    total = 0.0
    for b in range(2):
        for c in range(3):
            # depthwise conv with SAME zero padding; the kernel is symmetric so conv == correlation
            blur_t = scipy.signal.correlate2d(target[b, c].double().numpy(), kernel, mode="same", boundary="fill")
            blur_e = scipy.signal.correlate2d(enhanced[b, c].double().numpy(), kernel, mode="same", boundary="fill")
            total += ((blur_t - blur_e) ** 2).sum()
    expected = total / (2 * 2)
    got = ColorLoss()(enhanced, target)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_color_loss_ignores_small_shifts_unlike_mse():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64)
    shifted = torch.roll(image, shifts=1, dims=-1)
    darker = image * 0.8
    k = dped_gauss_kernel()
    # a 1-px shift costs far less colour loss than a 20% exposure change of the same image
    assert color_loss(shifted, image, k) < 0.05 * color_loss(darker, image, k)
    assert ((shifted - image) ** 2).mean() > ((darker - image) ** 2).mean()


def test_color_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        color_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), dped_gauss_kernel())


def test_tv_loss_matches_dped_formula():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 7, 9)
    b = x.shape[0]
    l2 = lambda t: (t**2).sum() / 2  # tf.nn.l2_loss  # noqa: E731
    size = lambda t: t[0].numel()  # utils._tensor_size: all dims but the batch  # noqa: E731
    y_tv = l2(x[:, :, 1:, :] - x[:, :, :-1, :])
    x_tv = l2(x[:, :, :, 1:] - x[:, :, :, :-1])
    expected = 2 * (x_tv / size(x[:, :, :, 1:]) + y_tv / size(x[:, :, 1:, :])) / b
    assert tv_loss(x).item() == pytest.approx(expected.item(), rel=1e-6)
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_discriminator_loss_and_texture_loss_known_answers():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    is_dslr = torch.tensor([1.0, 0.0, 0.0])
    # -[log 0.9 + log 0.8 + log(clip(0, 1e-10))]
    expected = -(np.log(0.9) + np.log(0.8) + np.log(1e-10))
    assert discriminator_loss(probs, is_dslr).item() == pytest.approx(expected, rel=1e-5)
    # generator: minus D's loss with every patch labelled "enhanced" (column 1)
    assert texture_loss(probs).item() == pytest.approx(np.log(0.1) + np.log(0.8) + np.log(1e-10), rel=1e-5)


def test_texture_loss_falls_as_discriminator_is_fooled():
    fooled = torch.tensor([[0.9, 0.1]])  # D thinks the enhanced patch is a DSLR one
    caught = torch.tensor([[0.1, 0.9]])
    assert texture_loss(fooled) < texture_loss(caught)


def test_dped_gray_uses_tf_weights():
    rgb = torch.zeros(1, 3, 1, 1)
    rgb[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.25])
    assert to_dped_gray(rgb).item() == pytest.approx(0.2989 + 0.5870 * 0.5 + 0.1140 * 0.25, rel=1e-6)


def test_pixel_content_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)
    assert PixelContentLoss("mse")(a, b).item() == pytest.approx(0.01)
    assert PixelContentLoss("l1+l2")(a, b).item() == pytest.approx(0.11)
    with pytest.raises(ValueError, match="unknown pixel content loss"):
        PixelContentLoss("l3")


def test_vgg_content_loss_is_mean_squared_relu5_4_difference():
    torch.manual_seed(0)
    loss = VGGContentLoss(weight=10.0)
    enhanced, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    vgg = VGG19Features(("relu5_4",))
    expected = ((vgg(enhanced)["relu5_4"] - vgg(target)["relu5_4"]) ** 2).mean()
    assert loss(enhanced, target).item() == pytest.approx(expected.item(), rel=1e-4)
    assert loss(target, target).item() == 0.0
    assert loss.weight == 10.0
