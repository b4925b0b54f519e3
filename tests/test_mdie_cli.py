"""MDIE from the command line: every config runs, the three stages chain, enhance/evaluate/export take the result."""

from pathlib import Path

import pytest
import torch

from datamodules.io import read_image, write_image
from mobile2dslr import REPO_ROOT
from mobile2dslr.cli import main

CONFIGS = REPO_ROOT / "configs" / "mdie"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]
# Tiny overrides per stage: seconds-long CPU runs of any config of that stage.
TINY = {
    "pretrain": ["--data.patch_size", "32", "--data.batch_size", "2", "--data.val_crop", "64", "--data.max_side", "128"],
    "self": ["--data.patch_size", "32", "--data.batch_size", "2", "--data.val_crop", "64", "--data.num_workers", "0"],
    "joint": ["--data.patch_size", "32", "--data.batch_size", "3", "--data.val_crop", "64", "--data.num_workers", "0",
              "--model.discriminator.init_args.image_size", "32", "--model.discriminator.init_args.repeat_num", "5",
              "--model.generator.init_args.width", "8", "--model.generator.init_args.residual_blocks", "1"],
}
STAGE_OF = {
    "intrinsic_pretrain": "pretrain", "demo_intrinsic_pretrain": "pretrain",
    "self_supervised": "self", "demo_self_supervised": "self",
    "joint": "joint", "demo_joint": "joint",
}


def test_every_mdie_config_is_covered() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(STAGE_OF) | {"joint_wgan_gp"}


@pytest.mark.parametrize("name", sorted(STAGE_OF))
def test_mdie_config_passes_fast_dev_run(name: str, tmp_path: Path) -> None:
    main(["fit", "--config", str(CONFIGS / f"{name}.yaml"), *TINY[STAGE_OF[name]], *QUIET,
          "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path)])


def test_wgan_gp_overlay_runs_five_critic_steps_per_generator_step(tmp_path: Path, capsys) -> None:
    configs = ["--config", str(CONFIGS / "joint.yaml"), "--config", str(CONFIGS / "joint_wgan_gp.yaml")]
    with pytest.raises(SystemExit):
        main(["fit", *configs, "--print_config"])
    printed = capsys.readouterr().out
    assert "adversarial: wgan-gp" in printed and "n_critic: 5" in printed and "max_steps: 600000" in printed
    assert "lambda_cyc: 10.0" in printed and "width: 64" in printed  # the rest is joint.yaml's
    main(["fit", *configs, *TINY["joint"], *QUIET, "--trainer.max_steps", "6", "--trainer.limit_val_batches", "0",
          "--trainer.default_root_dir", str(tmp_path)])
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 1 and ckpt["critic_steps"] == 5 and ckpt["global_step"] == 6


def _fit(config: str, stage: str, root: Path, *extra: str) -> Path:
    main(["fit", "--config", str(CONFIGS / config), *TINY[stage], *QUIET, "--trainer.max_steps", "2",
          "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "1", "--trainer.default_root_dir", str(root), *extra])
    return next(root.rglob("last.ckpt"))


def test_three_stages_chain_then_enhance_evaluate_and_export(tmp_path: Path, shared_dir: Path) -> None:
    sintel = shared_dir / "data/sintel/data/MPI"
    pretrain = _fit("demo_intrinsic_pretrain.yaml", "pretrain", tmp_path / "pre", "--data.root", str(sintel),
                    "--data.val_frames", '["0011"]')
    self_supervised = _fit("demo_self_supervised.yaml", "self", tmp_path / "self", "--model.init_from", str(pretrain))
    joint = _fit("demo_joint.yaml", "joint", tmp_path / "joint", "--model.init_from", str(self_supervised),
                 "--trainer.max_steps", "4")
    state = torch.load(joint, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["_class_path"] == "lightning_modules.MDIE" and state["iteration"] == 2

    polyu = shared_dir / "data/noisy/PolyU/CroppedImages"
    photo = polyu / "Canon5D2_5_160_3200_chair_11_real.JPG"
    main(["enhance", str(photo), str(tmp_path / "out.JPG"), "--ckpt", str(joint), "--inference", "sequential", "--tile", "256"])
    enhanced, noisy = read_image(tmp_path / "out.JPG"), read_image(photo)
    assert enhanced.shape == noisy.shape and abs(enhanced - noisy).mean() > 1e-3

    with pytest.raises(SystemExit) as stopped:  # --inference is MDIE's: one clear line for a phase-1 checkpoint
        main(["enhance", str(photo), str(tmp_path / "x.JPG"), "--ckpt", str(pretrain), "--inference", "all_high"])
    assert stopped.value.code == 2

    pairs = tmp_path / "pairs"  # two PolyU pairs, a 128 px crop each: evaluate is not under test for speed
    for stem in ("Canon5D2_5_160_3200_chair_11", "Sony_4-5_125_3200_plant_10"):
        for side in ("real", "mean"):
            write_image(pairs / f"{stem}_{side}.png", read_image(polyu / f"{stem}_{side}.JPG")[:128, :128])
    main(["evaluate", str(pairs), str(tmp_path / "eval"), "--layout", "suffix", "--ckpt", f"mdie={joint}", "--crop", "0"])
    means = (tmp_path / "eval" / "means.csv").read_text()
    assert "mdie," in means and "mdie+sequential," in means and "input," in means


def test_export_dnd_takes_an_mdie_checkpoint(tmp_path: Path, shared_dir: Path) -> None:
    import numpy as np

    from dnd_files import grid_boxes, write_dnd_tree

    noisy = read_image(shared_dir / "data/noisy/PolyU/CroppedImages/Canon80D_8_8_3200_ball_16_real.JPG")[:96, :80]
    root = write_dnd_tree(tmp_path / "dnd", [noisy], [grid_boxes(96, 80, 16)])
    joint = _fit("demo_joint.yaml", "joint", tmp_path / "joint")
    main(["export-dnd", str(root), str(tmp_path / "submission"), "--ckpt", str(joint)])
    assert len(list((tmp_path / "submission").glob("0001_*.mat"))) == 20
    assert (tmp_path / "submission" / "bundled" / "0001.mat").is_file()
    assert np.isfinite(noisy).all()
