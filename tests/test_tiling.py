"""Tiled inference equals untiled inference (batch-norm and instance-norm generators)."""

import pytest
import torch

from lightning_modules.nets import DPEDGenerator
from mobile2dslr.tiling import TiledEnhancer, receptive_radius, tile_grid

# Stated tolerance: tiled vs untiled output, max abs difference on [0, 1] images (float32).
TOLERANCE = 1e-5


def bn_generator(**kwargs):
    torch.manual_seed(0)
    net = DPEDGenerator(width=16, norm="batch", **kwargs).eval()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_receptive_radius_of_dped_generator():
    # 9x9 head (4) + 8 residual 3x3 (8) + two 3x3 (2) + 9x9 out (4)
    assert receptive_radius(DPEDGenerator()) == 18
    assert receptive_radius(DPEDGenerator(separable=True)) == 18


def test_tile_grid_partitions_the_image():
    cores = tile_grid(301, 417, 128)
    covered = torch.zeros(301, 417, dtype=torch.int)
    for y0, y1, x0, x1 in cores:
        assert y1 - y0 <= 128 and x1 - x0 <= 128
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_tiled_equals_untiled(norm):
    torch.manual_seed(1)
    image = torch.rand(1, 3, 301, 417)
    net = bn_generator() if norm == "batch" else DPEDGenerator(width=16, norm="instance", input_equalization=True).eval()
    with torch.no_grad():
        untiled = net(image)
    runner = TiledEnhancer(net, tile=128, max_untiled_pixels=0)  # force tiles, also for instance norm
    assert len(runner.tiles_for(301, 417)) == 12
    tiled = runner(image)
    assert (tiled - untiled).abs().max() < TOLERANCE
    # Without enough context the seams would show: the halo is what makes it exact.
    assert (TiledEnhancer(net, tile=128, halo=2, blend=2, max_untiled_pixels=0)(image) - untiled).abs().max() > 1e-3


def test_instance_norm_nets_run_untiled_when_they_fit():
    net = DPEDGenerator(width=8, norm="instance").eval()
    assert len(TiledEnhancer(net, tile=64, max_untiled_pixels=10_000).tiles_for(90, 100)) == 1
    assert len(TiledEnhancer(net, tile=64, max_untiled_pixels=1_000).tiles_for(90, 100)) == 4
    assert len(TiledEnhancer(bn_generator(), tile=64).tiles_for(90, 100)) == 4  # local nets always tile


def test_progress_reports_every_tile():
    seen = []
    TiledEnhancer(bn_generator(), tile=32)(torch.rand(1, 3, 64, 96), progress=seen.append)
    assert seen == [1, 2, 3, 4, 5, 6]


# MDIE's chain has stride-2 convs (tiles on a 32-px grid) and instance norm in G (whole-image
# statistics gathered over the tiles); its declared halo covers its reach in practice.
MDIE_TOLERANCE = 1e-4


def test_tile_grid_on_a_stride_grid():
    cores = tile_grid(437, 611, 200, multiple=32)
    inner = {y for c in cores for y in c[:2]} - {0, 437} | {x for c in cores for x in c[2:]} - {0, 611}
    assert inner and all(v % 32 == 0 for v in inner)
    covered = torch.zeros(437, 611, dtype=torch.int32)
    for y0, y1, x0, x1 in cores:
        covered[y0:y1, x0:x1] += 1
    assert torch.all(covered == 1)


def test_mdie_chain_tiled_equals_untiled():
    from lightning_modules.nets import IntrinsicComposer, IntrinsicDecomposer, MDIEEnhancer, StarGANGenerator

    torch.manual_seed(0)
    f, g, c = IntrinsicDecomposer(widths=(8, 16, 32, 64, 128)), StarGANGenerator(width=8, residual_blocks=1), IntrinsicComposer(widths=(8, 16, 32, 64, 128))
    torch.nn.init.normal_(g.output.weight, std=0.05)  # not the identity it starts as
    for m in [*f.modules(), *c.modules()]:
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net = MDIEEnhancer(f, g, c).eval()
    image = torch.rand(1, 3, 301, 395)
    with torch.no_grad():
        whole = net(image)
    tiled = TiledEnhancer(net, tile=128, max_untiled_pixels=0)  # force tiles and gathered statistics
    assert len(tiled.tiles_for(301, 395)) > 4 and tiled.halo % 32 == 0
    assert (tiled(image) - whole).abs().max() < MDIE_TOLERANCE
