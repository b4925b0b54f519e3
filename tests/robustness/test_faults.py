"""Matrix 3: faults — kill -9 and resume, NaN losses, full disks, killed `enhance` runs."""

import csv
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from datamodules import read_image, write_image
from mobile2dslr import REPO_ROOT
from mobile2dslr.cli import main
from mobile2dslr.commands import enhance as enhance_module
from zoo import _photo

TINY = ["--data.patch_size", "32", "--data.batch_size", "2", "--data.val_crop", "48", "--data.num_workers", "0",
        "--model.discriminator.init_args.patch_size", "32", "--model.generator.init_args.width", "8",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
ENV = dict(os.environ, WANDB_MODE="disabled", PYTHONWARNINGS="ignore")


def fit_cmd(root, iterations, *extra):
    return [sys.executable, "-m", "mobile2dslr", "fit", "--config", "configs/mpse/demo_phase1.yaml", *TINY,
            "--trainer.default_root_dir", str(root), "--trainer.max_steps", str(2 * iterations),
            "--trainer.val_check_interval", "1000", "--lr_halving.every_n_iterations", "3",
            "--trainer.callbacks.every_n_train_steps", "2",  # the demo's last.ckpt: every iteration
            "--trainer.callbacks.dirpath", str(root / "checkpoints"),
            "--trainer.logger", "pytorch_lightning.loggers.CSVLogger", "--trainer.log_every_n_steps", "1", *extra]


def saved_iteration(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["iteration"]
    except Exception:  # missing, or being written right now
        return -1


def logged(root):
    rows = []
    for file in root.rglob("metrics.csv"):
        with open(file) as handle:
            rows += [r for r in csv.DictReader(handle) if r.get("lr/generator")]
    return {int(float(r["iteration"])): float(r["lr/generator"]) for r in rows if r.get("iteration")}


def test_kill_9_during_training_then_resume_continues_iteration_lr_and_optimizer(tmp_path):
    first = tmp_path / "first"
    process = subprocess.Popen(fit_cmd(first, 30, "--trainer.logger.init_args.save_dir", str(first)),
                               cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = first / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while saved_iteration(last) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = saved_iteration(last)
    assert 3 <= killed_at < 30, f"not killed mid-run (at {killed_at}): {process.stderr.read()[-2000:]}"

    second = tmp_path / "second"
    result = subprocess.run(fit_cmd(first, 30, "--trainer.logger.init_args.save_dir", str(second), "--ckpt_path", str(last)),
                            cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["iteration"] == 30
    # Adam's state went on from the checkpoint: one generator step per iteration in total.
    assert final["optimizer_states"][0]["state"][0]["step"] == 30
    curve = logged(second)
    assert min(curve) == killed_at + 1 and max(curve) == 30
    # The uninterrupted schedule: 5e-4 halved every 3 iterations (logged after each iteration).
    assert curve == {it: pytest.approx(5e-4 * 0.5 ** (it // 3)) for it in curve}


def test_nan_loss_stops_naming_iteration_and_loss_without_a_bad_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", "configs/mpse/demo_phase1.yaml", *TINY, "--data", "tiny_data.NaNPairs",
              "--data.nan_from", "4", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
              "--trainer.max_steps", "20", "--trainer.callbacks.every_n_train_steps", "2"])
    err = capsys.readouterr().err
    assert info.value.code == 3
    assert "iteration 4: generator loss is nan" in err and "content=nan" in err and "Traceback" not in err
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    import pytorch_lightning as pl

    def full(self, filepath, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", full)
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", "configs/mpse/demo_phase1.yaml", *TINY, "--trainer.default_root_dir", str(tmp_path),
              "--trainer.logger", "false", "--trainer.max_steps", "4", "--trainer.callbacks.every_n_train_steps", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err[-1].endswith("last.ckpt: No space left on device")


@pytest.fixture()
def photos(tmp_path):
    for i in range(6):
        write_image(tmp_path / "in" / f"{i}.png", _photo(256, 256, seed=i))
    return tmp_path / "in"


@pytest.mark.parametrize("error", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_full_disk_or_unwritable_output_folder_while_enhancing(photos, tmp_path, enhancer_ckpt, capsys, monkeypatch, error):
    def failing_write(path, *args, **kwargs):
        raise OSError(error[0], error[1], str(path))

    monkeypatch.setattr(enhance_module, "write_image", failing_write)
    assert enhance_module.enhance(str(photos), str(tmp_path / "out"), ckpt=str(enhancer_ckpt)) == 1
    err = capsys.readouterr().err
    assert err.count(f"cannot write ({error[1]})") >= 6 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_kill_9_during_enhance_leaves_no_partial_file_and_a_rerun_finishes(photos, tmp_path, enhancer_ckpt):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mobile2dslr", "enhance", str(photos), str(out), "--ckpt", str(enhancer_ckpt), "--precision", "fp32"]
    process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out.exists() and any(p.suffix == ".png" for p in out.iterdir())) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert 1 <= len(done) < 6, done
    for name in done:  # every output there is complete
        assert read_image(out / name).shape == (256, 256, 3)
    for leftover in out.glob(".*.tmp"):  # a temp file may remain; it is hidden and never an output
        leftover.unlink()
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and f"enhancing {6 - len(done)} image(s)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(6)]
