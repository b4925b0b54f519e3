"""`mobile2dslr enhance` running the MPSE chain: phase 1 or 2, then phase 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import read_image, write_image
from lightning_modules import RegionalEqualization
from mobile2dslr import REPO_ROOT
from mobile2dslr.checkpoints import load_enhancer, load_phase
from mobile2dslr.cli import main
from mobile2dslr.commands.enhance import enhance

QUANTUM = 1 / 255 + 1e-6  # 8-bit PNG outputs


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    common = ["--data.num_workers", "0", "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", "--config", str(REPO_ROOT / "configs/mpse/demo_phase1.yaml"), "--model.generator.init_args.width", "8",
          "--model.generator.init_args.blocks", "1", "--model.discriminator.init_args.patch_size", "32",
          "--data.patch_size", "32", "--data.batch_size", "2", "--trainer.max_steps", "2",
          "--trainer.default_root_dir", str(folder / "phase1"), *common])
    phase1 = folder / "phase1" / "checkpoints" / "last.ckpt"
    main(["fit", "--config", str(REPO_ROOT / "configs/mpse/phase2_style.yaml"), "--model.refiner.init_args.width", "8",
          "--model.refiner.init_args.blocks", "1", "--model.refiner.init_args.separable", "false",
          "--model.refiner.init_args.activation", "lrelu", "--model.init_from", str(phase1),
          "--model.objective.style_layers", "[relu1_1, relu2_1]", "--data.patch_size", "32", "--data.batch_size", "2",
          "--trainer.max_steps", "1", "--trainer.default_root_dir", str(folder / "phase2"), *common])
    return {"phase1": phase1, "phase2": folder / "phase2" / "checkpoints" / "last.ckpt"}


@pytest.fixture()
def photos(tmp_path: Path, shared_dir: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    low = sorted((shared_dir / "data/lowlight/our485/low").iterdir())[0]
    write_image(folder / "dark.png", read_image(low)[:96, :128])  # a LOL low-light crop
    write_image(folder / "street.png", read_image(shared_dir / "data/dped/iphone/training_data/canon/2.png"))
    return folder


def _net_output(ckpt: Path, path: Path) -> np.ndarray:
    image = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return load_enhancer(str(ckpt))(image).clamp(0, 1)[0].permute(1, 2, 0).numpy()


def test_phase2_checkpoint_runs_phase3_by_default_and_off_is_the_refiner_alone(checkpoints, photos, tmp_path) -> None:
    assert enhance(str(photos), str(tmp_path / "off"), ckpt=str(checkpoints["phase2"]), postprocess="off", precision="fp32") == 0
    assert enhance(str(photos), str(tmp_path / "on"), ckpt=str(checkpoints["phase2"]), precision="fp32") == 0
    module = load_phase(str(checkpoints["phase2"]))
    post = RegionalEqualization(smooth=0.01)  # enhance's defaults: depth 2, gamma auto
    for name in ("dark.png", "street.png"):
        refined = _net_output(checkpoints["phase2"], photos / name)
        assert np.abs(read_image(tmp_path / "off" / name) - refined).max() <= QUANTUM
        # Phase 3 = RMSHE per region of the checkpoint's segmentation of the refined photo.
        tensor = torch.from_numpy(refined).permute(2, 0, 1)[None]
        masks = module.objective.regions.masks(module.objective.segmenter(tensor))
        expected = post(tensor, masks)[0].permute(1, 2, 0).numpy()
        assert np.abs(read_image(tmp_path / "on" / name) - expected).max() <= QUANTUM


def test_phase3_gamma_alone_is_exact_on_a_phase1_checkpoint(checkpoints, photos, tmp_path) -> None:
    status = enhance(str(photos), str(tmp_path / "out"), ckpt=str(checkpoints["phase1"]), postprocess="on",
                     equalize=False, gamma="on", precision="fp32")
    assert status == 0
    for name in ("dark.png", "street.png"):
        expected = _net_output(checkpoints["phase1"], photos / name) ** (1 / 2.2)
        assert np.abs(read_image(tmp_path / "out" / name) - expected).max() <= QUANTUM


def test_a_reference_sets_region_strengths_and_optimize_needs_phase2(checkpoints, photos, tmp_path, shared_dir) -> None:
    reference = str(shared_dir / "data/hr/CUrban100/img_047.png")
    assert enhance(str(photos), str(tmp_path / "ref"), ckpt=str(checkpoints["phase2"]), reference=reference, precision="fp32") == 0
    assert (tmp_path / "ref" / "street.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["enhance", str(photos), str(tmp_path / "x"), "--ckpt", str(checkpoints["phase1"]), "--mode", "optimize",
              "--reference", reference])
    assert exit_info.value.code == 2 and not (tmp_path / "x").exists()


def test_evaluate_scores_a_phase2_checkpoint_with_and_without_phase3(checkpoints, shared_dir, tmp_path) -> None:
    from mobile2dslr.commands.evaluate import evaluate

    status = evaluate(str(shared_dir / "data/dped"), str(tmp_path / "eval"), ckpt=f"mpse={checkpoints['phase2']}",
                      max_images=2, device="cpu")
    assert status == 0
    rows = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()
    methods = {row.split(",")[0] for row in rows[1:]}
    assert {"input", "he", "gamma", "he+gamma", "mpse", "mpse+phase3"} <= methods
