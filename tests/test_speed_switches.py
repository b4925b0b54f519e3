"""Precision and layout switches: bf16-mixed and channels_last training, inference layouts, compile."""

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from callbacks import Performance
from callbacks.performance import batch_report
from lightning_modules import DPEDPlus
from lightning_modules.losses import PixelContentLoss
from lightning_modules.nets import DPEDDiscriminator, DPEDGenerator
from mobile2dslr.cli import main
from mobile2dslr.errors import UserError
from mobile2dslr.tiling import TiledEnhancer
from test_mdie_modules import _tiny_mdie
from tiny_data import TinyDomains, TinyPairs


def _phase1(seed: int = 0) -> DPEDPlus:
    torch.manual_seed(seed)
    return DPEDPlus(DPEDGenerator(width=8, blocks=1), DPEDDiscriminator(patch_size=32), PixelContentLoss("mse"), lr=2e-3)


def _fit(model, data, steps: int, tmp_path, **kwargs) -> pl.Trainer:
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path, **kwargs)
    trainer.fit(model, data)
    return trainer


class _OutputDtype(pl.Callback):
    """Records the dtype of the generator's output during training."""

    def __init__(self):
        self.dtypes = set()

    def on_fit_start(self, trainer, pl_module):
        pl_module.generator.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))


@pytest.mark.parametrize("phase", ["phase1", "mdie"])
def test_bf16_mixed_training_runs_in_bf16_and_stays_finite(phase, tmp_path) -> None:
    model, data = (_phase1(), TinyPairs(batch_size=2)) if phase == "phase1" else (_tiny_mdie(), TinyDomains(patch_size=32, batch_size=3, length=12))
    before = [p.detach().clone() for p in model.generator.parameters()]
    probe = _OutputDtype()
    trainer = _fit(model, data, 4, tmp_path, precision="bf16-mixed", callbacks=[probe])
    assert torch.bfloat16 in probe.dtypes  # autocast really ran the generator in bf16
    assert model.iteration == 2 and torch.isfinite(trainer.callback_metrics["train/loss_g"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))


class _Losses(pl.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(trainer.callback_metrics["train/loss_g"]))


def test_channels_last_training_matches_contiguous(tmp_path) -> None:
    runs = {}
    for layout, extra in (("contiguous", []), ("channels_last", [Performance(channels_last=True)])):
        model, losses = _phase1(), _Losses()
        _fit(model, TinyPairs(batch_size=2), 6, tmp_path, callbacks=[losses, *extra])
        runs[layout] = (model, losses.values)
    conv = runs["channels_last"][0].generator.head[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    # Same maths in another layout: the same losses (Adam's sign-like first steps amplify rounding
    # in near-zero gradients, so weights are compared through the losses they give).
    first, second = runs["contiguous"][1], runs["channels_last"][1]
    assert len(first) == 3 and first[0] == pytest.approx(second[0], rel=1e-5)
    assert first == pytest.approx(second, rel=1e-2)


def test_channels_last_reaches_the_batches() -> None:
    batch = {"lq": torch.rand(2, 3, 8, 8), "name": ["a", "b"]}
    Performance(channels_last=True).on_train_batch_start(None, None, batch, 0)
    assert batch["lq"].is_contiguous(memory_format=torch.channels_last) and not batch["lq"].is_contiguous()


def test_batch_report_states_per_device_and_global_batch() -> None:
    trainer = SimpleNamespace(world_size=8, num_devices=4, num_nodes=2, accumulate_grad_batches=2)
    assert batch_report(trainer, 16) == "batch: 16 per device x 4 device(s) x 2 node(s) x 2 accumulated = 256 global"
    single = SimpleNamespace(world_size=1, num_devices=1, num_nodes=1, accumulate_grad_batches=1)
    assert batch_report(single, 8) == "batch: 8 per device x 1 device(s) = 8 global"


def test_compile_of_an_unknown_net_is_one_clear_error() -> None:
    with pytest.raises(UserError, match="has no network 'generatr'"):
        Performance(compile_nets=["generatr"]).setup(None, _phase1(), "fit")


def test_cli_switches_parse_and_report_the_batch(tmp_path, caplog) -> None:
    main(["fit", "--config", "configs/mpse/demo_phase1.yaml", "--data.patch_size", "32", "--data.batch_size", "2",
          "--model.discriminator.init_args.patch_size", "32", "--data.val_crop", "48", "--trainer.fast_dev_run", "1",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
          "--performance.channels_last", "true", "--trainer.precision", "bf16-mixed"])
    assert "batch: 2 per device x 1 device(s) = 2 global; precision bf16-mixed, channels_last" in caplog.text


def _random_bn_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    net = DPEDGenerator(width=16, norm="batch", separable=True).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("layout", ["channels_last", "auto"])
def test_inference_layouts_equal_contiguous(layout) -> None:
    image = torch.rand(1, 3, 150, 170)
    reference = TiledEnhancer(_random_bn_generator(), tile=64)(image)
    tiled = TiledEnhancer(_random_bn_generator(), tile=64, memory_format=layout)
    assert (tiled(image) - reference).abs().max() < 1e-5
    assert tiled.memory_format in (torch.contiguous_format, torch.channels_last)  # auto has chosen one


def test_compile_failure_falls_back_to_eager(monkeypatch) -> None:
    def broken(fn, **kwargs):
        def run(x):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    net = _random_bn_generator()
    image = torch.rand(1, 3, 40, 40)
    with pytest.warns(UserWarning, match="torch.compile failed, running eager"):
        out = TiledEnhancer(net, compile=True)(image)
    assert torch.allclose(out, TiledEnhancer(net)(image), atol=1e-6)


@pytest.mark.slow
def test_compiled_inference_and_training(tmp_path) -> None:
    net = _random_bn_generator()
    image = torch.rand(1, 3, 64, 64)
    compiled = TiledEnhancer(net, compile=True)
    assert compiled.compiled is not None and (compiled(image) - TiledEnhancer(net)(image)).abs().max() < 1e-4
    model = _phase1()
    _fit(model, TinyPairs(batch_size=2), 4, tmp_path, callbacks=[Performance(compile_nets=["generator"])])
    assert model.iteration == 2
    assert not any("_orig_mod" in key for key in model.state_dict())  # compiled in place: checkpoint keys unchanged


def test_bf16_channels_last_is_the_bf16_path_in_another_layout() -> None:
    """The default path where bf16 is fast: same result as bf16 NCHW, close to fp32 (PSNR bound: test_enhance)."""
    net = _random_bn_generator()
    image = torch.rand(1, 3, 48, 48)
    fp32 = TiledEnhancer(net)(image)
    bf16 = TiledEnhancer(net, autocast_dtype=torch.bfloat16)(image)
    nhwc = TiledEnhancer(net, autocast_dtype=torch.bfloat16, memory_format="channels_last")(image)
    assert (nhwc - bf16).abs().max() < 2e-2 and 0 < (nhwc - fp32).abs().max() < 5e-2
