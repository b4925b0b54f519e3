"""The `mobile2dslr` console script end to end: configs, overrides, errors, resume, report."""

import os
import subprocess
import sys

import pytest
import torch
import wandb

from mobile2dslr import REPO_ROOT
from mobile2dslr.cli import main, resolve_config_paths

CONFIGS = REPO_ROOT / "configs" / "mpse"
PHASE1_CONFIGS = sorted([CONFIGS / "phase1_dped.yaml", CONFIGS / "demo_phase1.yaml", *(CONFIGS / "ablation").glob("*.yaml")])
# Tiny overrides that turn any phase-1 config into a seconds-long CPU run.
TINY = [
    "--data.patch_size", "32", "--data.batch_size", "2", "--data.val_crop", "48", "--data.num_workers", "0",
    "--model.discriminator.init_args.patch_size", "32", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]


def test_every_ablation_row_has_a_config():
    names = {p.stem for p in (CONFIGS / "ablation").glob("*.yaml")}
    assert names == {"baseline", "vgg_loss", "l1_l2", "mobilenet", "lrelu", "contrast_he", "vl_lr_he"}


@pytest.mark.parametrize("config", PHASE1_CONFIGS, ids=lambda p: p.stem)
def test_phase1_config_passes_fast_dev_run(config, tmp_path):
    main(["fit", "--config", str(config), *TINY, "--trainer.fast_dev_run", "1",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"])


def test_ablation_configs_set_the_switches_they_name(capsys):
    def printed(name):
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(CONFIGS / "ablation" / f"{name}.yaml"), "--print_config"])
        return capsys.readouterr().out

    assert "PixelContentLoss" in printed("baseline") and "kind: mse" in printed("baseline")
    assert "VGGContentLoss" in printed("vgg_loss")
    assert "kind: l1+l2" in printed("l1_l2")
    assert "separable: true" in printed("mobilenet")
    assert "activation: lrelu" in printed("lrelu")
    assert "input_equalization: true" in printed("contrast_he")
    combo = printed("vl_lr_he")
    assert "VGGContentLoss" in combo and "activation: lrelu" in combo and "input_equalization: true" in combo


def test_config_paths_resolve_from_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = resolve_config_paths(["fit", "--config", "configs/mpse/phase1_dped.yaml", "--data=configs/data/dped.yaml"])
    assert args[2] == str(REPO_ROOT / "configs/mpse/phase1_dped.yaml")
    assert args[3] == f"--data={REPO_ROOT / 'configs/data/dped.yaml'}"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("{}")
    assert resolve_config_paths(["fit", "--config", "configs/mine.yaml"])[2] == "configs/mine.yaml"  # local wins


def test_command_line_overrides_reach_the_model(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/mpse/phase1_dped.yaml", "--model.lr", "1e-4",
              "--model.generator.init_args.width", "48", "--trainer.max_steps", "100", "--print_config"])
    out = capsys.readouterr().out
    assert "lr: 0.0001" in out and "width: 48" in out and "max_steps: 100" in out


def cli(*args, cwd=REPO_ROOT):
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "mobile2dslr", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_missing_dataset_is_one_line_naming_the_layout(tmp_path):
    result = cli("fit", "--config", "configs/mpse/phase1_dped.yaml", "--data", "configs/data/dped.yaml",
                 "--data.root", str(tmp_path / "nope"), "--trainer.logger", "false", "--trainer.fast_dev_run", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mobile2dslr: error:") and "nope" in last and "training_data" in last


def test_unknown_key_gets_the_parsers_message_not_a_traceback():
    result = cli("fit", "--config", "configs/mpse/phase1_dped.yaml", "--model.init_args.lernrate", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "lernrate" in result.stderr


def test_fit_resume_test_and_predict_end_to_end(tmp_path):
    """Train 4 iterations with wandb offline, resume to 6, then report and predict."""
    run = tmp_path / "run"
    common = ["--config", "configs/mpse/demo_phase1.yaml", *TINY, "--trainer.default_root_dir", str(run),
              "--lr_halving.every_n_iterations", "3"]
    main(["fit", *common, "--trainer.max_steps", "8", "--trainer.val_check_interval", "2",
          "--trainer.logger.init_args.save_dir", str(run)])
    last = next(run.rglob("last.ckpt"))
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["global_step"] == 8
    assert ckpt["hyper_parameters"]["generator"]["class_path"] == "lightning_modules.nets.DPEDGenerator"
    assert not any(k.startswith("content_loss.vgg") for k in ckpt["state_dict"])  # VGG stays out
    assert list(run.rglob("wandb/offline-run-*")), "wandb offline run missing"
    assert wandb.run is None  # closed, so the next run in this process gets its own

    main(["fit", *common, "--trainer.max_steps", "12", "--trainer.val_check_interval", "2", "--trainer.logger", "false",
          "--ckpt_path", str(last)])
    newest = max(run.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert newest != last  # without a logger it goes to <default_root_dir>/checkpoints
    resumed = torch.load(newest, map_location="cpu", weights_only=True)
    assert resumed["iteration"] == 6
    halving = next(v for k, v in resumed["callbacks"].items() if k.startswith("LRHalving"))
    assert halving["halvings"] == 2
    assert resumed["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(5e-4 / 4)

    main(["test", *common, "--trainer.logger", "false", "--ckpt_path", str(last)])
    report = (run / "report" / "report.md").read_text()
    assert "| chelsea |" in report and "| coffee |" in report and "**mean**" in report
    assert (run / "report" / "side_by_side.png").is_file() and (run / "report" / "images" / "chelsea.png").is_file()

    out = tmp_path / "pred"
    main(["predict", *common, "--trainer.logger", "false", "--ckpt_path", str(last),
          "--trainer.callbacks+=callbacks.EnhancedImageWriter", "--trainer.callbacks.out_dir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["chelsea.png", "coffee.png"]


def test_ddp_on_cpu_two_processes_end_identical(tmp_path):
    """2-process DDP (gloo, plain BatchNorm): manual G/D optimisation needs find_unused_parameters."""
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONWARNINGS="ignore", DDP_PROBE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "mobile2dslr", "fit", "--config", "configs/mpse/demo_phase1.yaml", *TINY,
         "--trainer.logger", "false", "--trainer.max_steps", "6", "--trainer.val_check_interval", "2",
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
         "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.callbacks+=ddp_probe.SaveRankParameters"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["iteration"] == ranks[1]["iteration"] == 3
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys()
    for key, value in ranks[0]["state"].items():
        if "running_" in key or "num_batches" in key:
            continue  # plain BatchNorm keeps per-process statistics (SyncBatchNorm is for GPUs)
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("overlay", ["cpu", "gpu", "ddp", "multinode"])
def test_trainer_overlays_merge_into_a_phase_config(overlay, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/mpse/demo_phase1.yaml", "--trainer", f"configs/trainer/{overlay}.yaml", "--print_config"])
    out = capsys.readouterr().out
    assert "max_steps: 1200" in out and "WandbLogger" in out  # the phase's own trainer settings survive
    assert ("accelerator: cpu" if overlay == "cpu" else "accelerator: gpu") in out
    if overlay in ("ddp", "multinode"):
        assert "strategy: ddp_find_unused_parameters_true" in out and "sync_batchnorm: true" in out


def test_cpu_overlay_trains(tmp_path):
    main(["fit", "--config", str(CONFIGS / "demo_phase1.yaml"), "--trainer", "configs/trainer/cpu.yaml", *TINY,
          "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"])
