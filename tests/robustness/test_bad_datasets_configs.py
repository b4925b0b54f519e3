"""Matrix 2: bad datasets, configs and checkpoints end in one line and exit status 2."""

import shutil

import pytest
import torch

from datamodules import write_image
from mobile2dslr.cli import main
from zoo import _photo

TINY = ["--trainer.fast_dev_run", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    err = capsys.readouterr().err
    return info.value.code, err


def one_error_line(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    return lines[-1]


def paired(root, lq=("1", "2", "3"), hq=("1", "2", "3")):
    for side, names in (("lq", lq), ("hq", hq)):
        for name in names:
            write_image(root / side / f"{name}.png", _photo(40, 40))
    return root


@pytest.mark.parametrize("problem", ["missing_root", "wrong_layout", "empty_split", "nothing_paired"])
def test_bad_dataset(problem, tmp_path, capsys):
    root = tmp_path / "data"
    expected = {
        "missing_root": "dataset folder not found",
        "wrong_layout": "folders layout not found",
        "empty_split": "cannot be split into training and validation",
        "nothing_paired": "no LQ/HQ pairs found",
    }[problem]
    if problem == "wrong_layout":
        write_image(root / "photos" / "a.png", _photo())
    elif problem == "empty_split":
        paired(root, lq=("1",), hq=("1",))
    elif problem == "nothing_paired":
        paired(root, lq=("1", "2"), hq=("3", "4"))
    code, err = run(capsys, "fit", "--config", "configs/mpse/phase1_dped.yaml", "--data", "configs/data/lol.yaml",
                    "--data.root", str(root), "--data.lq_dir", "lq", "--data.hq_dir", "hq", *TINY)
    line = one_error_line(err)
    assert code == 2 and line.startswith("mobile2dslr: error:") and expected in line and str(root) in line, line


def test_unpaired_names_are_skipped_with_a_warning(tmp_path, caplog):
    from datamodules import PairedDataModule

    root = paired(tmp_path / "data", lq=("1", "2", "3", "4"), hq=("1", "2", "3", "5"))
    data = PairedDataModule(str(root), layout="folders", num_workers=0, val_fraction=0.34)
    with pytest.warns(UserWarning, match=r"skipping 2 file\(s\) without a twin: 4, 5"):
        data.setup("fit")
    assert len(data.train_pairs) + len(data.val_pairs) == 3


@pytest.mark.parametrize("args,phrase", [
    (["--model.init_args.lernrate", "1"], "lernrate"),
    (["--model.lr", "fast"], "fast"),
    (["--trainer.max_stepz", "3"], "max_stepz"),
    (["--data.patch_size", "-5"], "patch_size and batch_size must be positive"),
])
def test_bad_config_values(args, phrase, capsys):
    code, err = run(capsys, "fit", "--config", "configs/mpse/phase1_dped.yaml", *args, *TINY)
    assert code == 2 and phrase in err and "Traceback" not in err


def test_checkpoint_of_another_kind_passed_to_enhance(tmp_path, capsys):
    from pytorch_lightning.demos.boring_classes import BoringModel

    write_image(tmp_path / "in" / "a.png", _photo())
    torch.save({"state_dict": BoringModel().state_dict(), "hyper_parameters": {"_class_path": "pytorch_lightning.demos.boring_classes.BoringModel"}},
               tmp_path / "boring.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    for ckpt, phrase in (("boring.ckpt", "does not enhance images"), ("plain.pt", "not a mobile2dslr phase checkpoint")):
        code, err = run(capsys, "enhance", str(tmp_path / "in"), str(tmp_path / "out"), "--ckpt", str(tmp_path / ckpt))
        assert code == 2 and phrase in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_wrong_generator_checkpoint_for_fine_tuning(tmp_path, enhancer_ckpt, capsys):
    code, err = run(capsys, "fit", "--config", "configs/mpse/phase1_dped.yaml", "--model.init_from", str(enhancer_ckpt), *TINY)
    # phase1_dped's generator is separable: the official (dense) weights do not fit it
    assert code == 2 and "does not fit this generator's config" in one_error_line(err)


def test_error_inside_a_dataloader_worker_is_still_one_line(tmp_path, capsys):
    from zoo import bad_files

    bad = bad_files(tmp_path / "zoo")
    for side in ("lq", "hq"):
        (tmp_path / "data" / side).mkdir(parents=True)
        for name in bad:
            shutil.copy(tmp_path / "zoo" / name, tmp_path / "data" / side / name)
    paired(tmp_path / "val", lq=("1",), hq=("1",))
    code, err = run(capsys, "fit", "--config", "configs/mpse/phase1_dped.yaml", "--data", "configs/data/lol.yaml",
                    "--data.root", str(tmp_path / "data"), "--data.lq_dir", "lq", "--data.hq_dir", "hq",
                    "--data.val_root", str(tmp_path / "val"), "--data.num_workers", "1", *TINY)
    line = one_error_line(err)
    assert code == 2 and line.startswith("mobile2dslr: error:") and "none of the 4 training images can be read" in line
    assert "Original Traceback" not in err
