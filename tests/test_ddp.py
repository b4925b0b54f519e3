"""2-process DDP on the CPU (gloo, plain BatchNorm) for the phases beyond phase 1 (tests/test_cli.py has phase 1).

Both ranks must end with identical parameters: gradients are averaged across processes, so
any net left out of DDP's reduction (or stepped on one rank only) would drift apart.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mobile2dslr import REPO_ROOT
from test_mdie_cli import TINY

CASES = {
    "mdie_pretrain": ("configs/mdie/demo_intrinsic_pretrain.yaml", TINY["pretrain"], 4, 4),
    "mdie_joint_wgan_gp": ("configs/mdie/demo_joint.yaml", [*TINY["joint"], "--model.adversarial", "wgan-gp", "--model.n_critic", "2"], 6, 2),
    "recommender": ("configs/mpse/recommender.yaml", ["--data.num_workers", "0"], 3, 3),
    "mpse_phase2": ("configs/mpse/demo_phase2.yaml", ["--data.patch_size", "48", "--data.batch_size", "2", "--data.num_workers", "0"], 2, 2),
}
SLOW = {"recommender", "mpse_phase2"}  # ~40 s each: make test-all


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in sorted(CASES)])
def test_two_cpu_processes_end_with_identical_parameters(case: str, tmp_path: Path) -> None:
    config, tiny, max_steps, iterations = CASES[case]
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONWARNINGS="ignore", DDP_PROBE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "mobile2dslr", "fit", "--config", config, *tiny, "--trainer.logger", "false",
         "--trainer.max_steps", str(max_steps), "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
         "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.callbacks+=ddp_probe.SaveRankParameters"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "per device x 2 device(s) = " in result.stderr + result.stdout  # the batch line of callbacks.Performance
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["iteration"] == ranks[1]["iteration"] == iterations
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys()
    for key, value in ranks[0]["state"].items():
        if "running_" in key or "num_batches" in key:
            continue  # plain BatchNorm keeps per-process statistics (SyncBatchNorm is for GPUs)
        assert torch.equal(value, ranks[1]["state"][key]), key
