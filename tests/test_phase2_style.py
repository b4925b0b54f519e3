"""MPSE phase 2: the style objective, the feed-forward refiner module and the optimize mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules import read_image
from lightning_modules import DPEDPlus, SemanticStyleRefinement, StyleObjective
from lightning_modules.nets import DPEDGenerator
from lightning_modules.style_optimization import guided_upsample, optimize_style
from mobile2dslr.checkpoints import load_enhancer
from mobile2dslr.cli import main
from mobile2dslr.errors import WeightsError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mpse" / "phase2_style.yaml"


def _tiny_generator(width: int = 8) -> DPEDGenerator:
    return DPEDGenerator(width=width, blocks=1, activation="lrelu", norm="batch")


def _photo(shared_dir: Path, side: str, index: int, size: int = 48) -> torch.Tensor:
    image = read_image(shared_dir / f"data/dped/iphone/training_data/{side}/{index}.png")[:size, :size]
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="module")
def objective() -> StyleObjective:
    return StyleObjective(style_layers=("relu1_1", "relu2_1", "relu3_1"))


def test_refiner_loss_falls_in_a_tiny_overfit(shared_dir: Path, objective: StyleObjective) -> None:
    torch.manual_seed(0)
    module = SemanticStyleRefinement(refiner=_tiny_generator(), objective=objective, lr=5e-3)
    batch = {
        "lq": torch.cat([_photo(shared_dir, "iphone", i) for i in range(2)]),
        "ref": torch.cat([_photo(shared_dir, "canon", i + 5) for i in range(2)]),
    }
    optimizer = module.configure_optimizers()
    module.train()
    losses = []
    for _ in range(31):
        loss, _, weights, _ = module._losses(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Style dominates (DPST's ratios) and falls slowly; the trend must be clearly down.
    assert losses[-1] < 0.85 * losses[0] and sum(losses[-5:]) < sum(losses[:5]), losses
    assert torch.allclose(weights.sum(dim=2), torch.ones(2, 3), atol=1e-5)  # Λ: 1 over regions per layer


def test_init_from_phase1_makes_refiner_and_content_the_phase1_generator(tmp_path: Path, objective: StyleObjective) -> None:
    torch.manual_seed(1)
    phase1 = DPEDPlus(generator=_tiny_generator()).eval()
    torch.save({"state_dict": phase1.state_dict()}, tmp_path / "phase1.ckpt")
    module = SemanticStyleRefinement(refiner=_tiny_generator(), objective=objective, init_from=str(tmp_path / "phase1.ckpt")).eval()
    image = torch.rand(1, 3, 32, 32)
    expected = phase1.generator(image)
    assert torch.allclose(module(image), expected, atol=1e-6)
    assert torch.allclose(module.content(image), expected.clamp(0, 1), atol=1e-6)
    module.train()  # the frozen content generator stays in eval mode (running BN statistics)
    assert not module.content_generator.training
    with pytest.raises(WeightsError, match="does not fit the refiner"):
        SemanticStyleRefinement(refiner=_tiny_generator(16), objective=objective, init_from=str(tmp_path / "phase1.ckpt"))
    without = SemanticStyleRefinement(refiner=_tiny_generator(), objective=objective)
    assert torch.equal(without.content(image), image)


def test_guided_upsample_carries_a_colour_change_and_keeps_full_size_detail() -> None:
    torch.manual_seed(2)
    content = torch.rand(1, 3, 64, 96)
    small = torch.nn.functional.interpolate(content, size=(16, 24), mode="area")
    assert torch.allclose(guided_upsample(content, small, small), content, atol=1e-6)  # no change → C itself
    shifted = guided_upsample(content, small, small + torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1))
    assert torch.allclose(shifted - content, torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1).expand_as(content), atol=1e-3)


def test_optimize_mode_lowers_the_objective_and_returns_full_size(shared_dir: Path, objective: StyleObjective) -> None:
    torch.manual_seed(3)
    content = _photo(shared_dir, "iphone", 3, size=96)
    reference = _photo(shared_dir, "canon", 7, size=96)
    head = SemanticStyleRefinement(refiner=_tiny_generator(), objective=objective).lambda_head
    context = objective.context(content[..., ::2, ::2], reference[..., ::2, ::2])
    before = objective.total(objective(content[..., ::2, ::2], context, head)[0]).item()
    result = optimize_style(content, reference, objective, head, steps=30, lr=0.02, working_side=48, progress=False)
    assert result.shape == content.shape and 0 <= result.min() and result.max() <= 1
    small = torch.nn.functional.interpolate(result, size=(48, 48), mode="area")
    after = objective.total(objective(small, context, head)[0]).item()
    assert after < 0.7 * before, (before, after)


def test_config_fits_on_demo_data_and_its_checkpoint_enhances(tmp_path: Path) -> None:
    main(["fit", "--config", str(CONFIG), "--model.refiner.init_args.width", "8", "--model.refiner.init_args.blocks", "1",
          "--data.patch_size", "32", "--data.batch_size", "2", "--data.val_crop", "48", "--data.num_workers", "0",
          "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    refiner = load_enhancer(str(checkpoint))
    assert isinstance(refiner, DPEDGenerator) and refiner(torch.rand(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_enhance_optimize_mode_writes_full_size_outputs_and_needs_a_reference(tmp_path: Path, shared_dir: Path) -> None:
    torch.manual_seed(4)
    phase1 = DPEDPlus(generator=_tiny_generator()).eval()
    torch.save({"state_dict": phase1.state_dict()}, tmp_path / "phase1.ckpt")
    main(["fit", "--config", str(CONFIG), "--model.refiner.init_args.width", "8", "--model.refiner.init_args.blocks", "1",
          "--model.refiner.init_args.separable", "false",
          "--model.init_from", str(tmp_path / "phase1.ckpt"), "--model.objective.style_layers", "[relu1_1, relu2_1]",
          "--data.patch_size", "32", "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.max_steps", "1",
          "--trainer.limit_val_batches", "0", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    checkpoint = str(tmp_path / "checkpoints" / "last.ckpt")
    photos = tmp_path / "photos"
    photos.mkdir()
    data = shared_dir / "data/dped/iphone/training_data"
    (photos / "a.png").write_bytes((data / "iphone/0.png").read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["enhance", str(photos), str(tmp_path / "out"), "--ckpt", checkpoint, "--mode", "optimize", "--steps", "4",
            "--working_side", "48", "--postprocess", "off"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--reference", str(data / "canon/3.png")])
    assert exit_info.value.code == 1  # broken.jpg failed, a.png was written
    out = read_image(tmp_path / "out" / "a.png")
    assert out.shape == (100, 100, 3) and not (tmp_path / "out" / "broken.jpg").exists()
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--overwrite", "true"])  # no --reference or --gallery
    assert exit_info.value.code == 2
