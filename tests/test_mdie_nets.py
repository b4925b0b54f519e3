"""MDIE's networks: the symmetric intrinsic autoencoders, StarGAN's G and D, the inference chain."""

import pytest
import torch
from torch import nn

from lightning_modules.nets import (
    IntrinsicAutoencoder,
    IntrinsicComposer,
    IntrinsicDecomposer,
    MDIEEnhancer,
    StarGANDiscriminator,
    StarGANGenerator,
)
from lightning_modules.nets.mdie_enhancer import high_quality_condition


def test_encoder_halves_five_times_with_the_thesis_filters() -> None:
    net = IntrinsicAutoencoder(3, 6)
    x = torch.rand(2, 3, 64, 96)
    shapes = []
    for layer in net.encoder:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 32, 48), (32, 16, 24), (64, 8, 12), (128, 4, 6), (256, 2, 3)]
    convs = [layer[0] for layer in net.encoder]
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
    assert all(isinstance(layer[1], nn.BatchNorm2d) and isinstance(layer[2], nn.ReLU) for layer in net.encoder)


def test_decoder_upsamples_by_pixel_shuffle_two_back_to_full_size() -> None:
    net = IntrinsicAutoencoder(3, 6)
    shuffles = [m for m in net.decoder.modules() if isinstance(m, nn.PixelShuffle)]
    assert [m.upscale_factor for m in shuffles] == [2] * 5
    # Sub-pixel: each decoder conv makes 4x the channels that the shuffle folds into space.
    for layer in net.decoder:
        conv, shuffle, norm = layer[0], layer[1], layer[2]
        assert conv.out_channels == 4 * norm.num_features and isinstance(shuffle, nn.PixelShuffle)
    # With skips the decoder sees the encoder's features at each scale (twice the channels).
    assert [layer[0].in_channels for layer in net.decoder] == [256, 256, 128, 64, 32]
    plain = IntrinsicAutoencoder(3, 6, skip_connections=False)
    assert [layer[0].in_channels for layer in plain.decoder] == [256, 128, 64, 32, 16]
    assert net.output.out_channels == 6


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (436, 96), (7, 9)])
def test_any_size_is_padded_to_32_and_cropped_back(size) -> None:
    net = IntrinsicAutoencoder(3, 6).eval()
    out = net(torch.rand(1, 3, *size))
    assert out.shape == (1, 6, *size)


def test_padding_is_only_bottom_right_so_the_top_left_matches_a_larger_image() -> None:
    net = IntrinsicAutoencoder(3, 6, widths=(4, 8)).eval()  # 2 levels: multiple of 4
    x = torch.rand(1, 3, 16, 16)
    # A 14x14 image padded to 16x16 by reflection is the 16x16 image's top-left when that
    # image *is* the reflection: compare against the explicitly padded input.
    small = x[..., :14, :14]
    padded = torch.nn.functional.pad(small, (0, 2, 0, 2), mode="reflect")
    assert torch.allclose(net(small), net(padded)[..., :14, :14], atol=1e-6)


def test_decomposer_albedo_in_unit_range_and_shading_positive_and_uncapped() -> None:
    f = IntrinsicDecomposer(widths=(4, 8))
    with torch.no_grad():
        f.net.output.bias[3:] = 6.0  # a strongly lit scene: shading ≈ softplus(6) ≈ 6
    albedo, shading = f(torch.rand(2, 3, 16, 16))
    assert albedo.min() > 0 and albedo.max() < 1
    assert shading.min() > 0 and shading.max() > 1.5


def test_composer_takes_albedo_and_shading() -> None:
    g = IntrinsicComposer(widths=(4, 8))
    out = g(torch.rand(1, 3, 12, 20), torch.rand(1, 3, 12, 20))
    assert out.shape == (1, 3, 12, 20) and 0 < out.min() and out.max() < 1


def test_residual_generator_starts_as_the_identity_and_uses_its_condition() -> None:
    torch.manual_seed(0)
    g = StarGANGenerator(width=8, residual_blocks=1)
    x = torch.rand(2, 6, 18, 22)
    assert torch.equal(g(x, torch.ones(2, 6)), x)
    nn.init.normal_(g.output.weight, std=0.1)
    g.eval()
    a, b = g(x, torch.zeros(2, 6)), g(x, torch.ones(2, 6))
    assert a.shape == x.shape and (a - b).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="condition must be"):
        g(x, torch.ones(2, 5))


def test_stargan_generator_layers() -> None:
    g = StarGANGenerator()
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 12 and convs[0].kernel_size == (7, 7)  # [A, S] + c̃
    downs = [c for c in convs if c.stride == (2, 2)]
    assert [(c.in_channels, c.out_channels) for c in downs] == [(64, 128), (128, 256)]
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 2
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(n.affine and not n.track_running_stats for n in norms)  # per-image statistics, train and eval


def test_discriminator_heads_and_patch_check() -> None:
    d = StarGANDiscriminator(image_size=128)
    src, cls = d(torch.rand(2, 3, 128, 128))
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 3)
    with pytest.raises(ValueError, match="built for 128x128"):
        d(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="divisible"):
        StarGANDiscriminator(image_size=100, repeat_num=6)


class _RecordingGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conditions = []

    def forward(self, x, condition):
        self.conditions.append(condition.clone())
        return x + 0.01


def test_inference_modes_ask_for_high_quality() -> None:
    f, g = IntrinsicDecomposer(widths=(4, 8)).eval(), IntrinsicComposer(widths=(4, 8)).eval()
    recorder = _RecordingGenerator()
    MDIEEnhancer(f, recorder, g, "all_high")(torch.rand(1, 3, 16, 16))
    assert len(recorder.conditions) == 1 and torch.equal(recorder.conditions[0], torch.ones(1, 6))
    recorder.conditions.clear()
    MDIEEnhancer(f, recorder, g, "sequential")(torch.rand(1, 3, 16, 16))
    expected = [torch.tensor([[1.0, 0, 0, 1, 0, 0]]), torch.tensor([[0, 1.0, 0, 0, 1, 0]]), torch.tensor([[0, 0, 1.0, 0, 0, 1]])]
    assert all(torch.equal(c, e) for c, e in zip(recorder.conditions, expected)) and len(recorder.conditions) == 3
    assert torch.equal(high_quality_condition(2, (1,)), torch.tensor([[0, 1.0, 0, 0, 1, 0]] * 2))
