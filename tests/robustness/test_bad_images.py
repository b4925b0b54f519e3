"""Matrix 1: awkward and broken image files through every reader (IO, training data, enhance)."""

import errno
import logging
import shutil

import numpy as np
import pytest
import torch

from datamodules import PairedDataModule, read_image
from mobile2dslr.commands.enhance import enhance
from mobile2dslr.errors import DatasetLayoutError, ImageReadError
from zoo import bad_files, good_files


def test_awkward_images_read_correctly(tmp_path):
    for name, (height, width) in good_files(tmp_path).items():
        image = read_image(tmp_path / name)
        assert image.shape == (height, width, 3) and image.dtype == np.float32, name
        assert 0 <= image.min() and image.max() <= 1, name


def test_broken_files_give_one_line_naming_the_file(tmp_path):
    for name, phrase in bad_files(tmp_path).items():
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        message = str(info.value)
        assert str(tmp_path / name) in message and phrase in message and "\n" not in message, message


def test_read_error_is_one_line(tmp_path, monkeypatch):
    # Tests run as root, so chmod would not stop the read: fake the error instead.
    good_files(tmp_path)
    real_open = open

    def failing_open(path, *args, **kwargs):
        if str(path).endswith("plain.png"):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(ImageReadError, match=r"plain.png: cannot open \(.*Input/output error"):
        read_image(tmp_path / "plain.png")


def paired_tree(root, names):
    """A folders-layout dataset whose LQ and HQ sides hold the same files."""
    for side in ("lq", "hq"):
        (root / side).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(root.parent / "zoo" / name, root / side / name)


def test_training_batches_form_from_awkward_files_and_skip_broken_ones(tmp_path, caplog):
    zoo = tmp_path / "zoo"
    good, bad = good_files(zoo), bad_files(zoo)
    paired_tree(tmp_path / "data", list(good) + list(bad))
    data = PairedDataModule(str(tmp_path / "data"), layout="folders", patch_size=32, batch_size=16,
                            samples_per_epoch=64, num_workers=0, val_fraction=0.2)
    with caplog.at_level(logging.WARNING):
        data.setup("fit")
        batches = list(data.train_dataloader())
    assert len(batches) == 4 and all(b["lq"].shape == (16, 3, 32, 32) for b in batches)
    seen = {name for b in batches for name in b["name"]}
    assert not seen & {n.rsplit(".", 1)[0] for n in bad}  # broken files never reach a batch
    assert any("tiny_1x1" in name or "small_10x10" in name for name in seen)  # small ones are padded, not dropped
    assert all(torch.isfinite(b["lq"]).all() for b in batches)
    warned = caplog.text
    assert "skipping unreadable" in warned and any(n in warned for n in bad)


def test_validation_split_drops_broken_files_at_setup(tmp_path, caplog):
    zoo = tmp_path / "zoo"
    good_files(zoo)
    bad_files(zoo)
    paired_tree(tmp_path / "data", ["plain.png", "gray.jpg"])
    paired_tree(tmp_path / "val", ["rgba.png", "cut_png.png", "text.jpg"])
    data = PairedDataModule(str(tmp_path / "data"), layout="folders", val_root=str(tmp_path / "val"), num_workers=0)
    with caplog.at_level(logging.WARNING):
        data.setup("fit")
    assert [p.name for p in data.val_pairs] == ["rgba"]
    assert "cut_png.png" in caplog.text and "text.jpg" in caplog.text


def test_every_training_file_broken_is_one_clear_error(tmp_path):
    zoo = tmp_path / "zoo"
    bad = bad_files(zoo)
    good_files(zoo)
    paired_tree(tmp_path / "data", list(bad))
    paired_tree(tmp_path / "val", ["plain.png"])
    data = PairedDataModule(str(tmp_path / "data"), layout="folders", val_root=str(tmp_path / "val"),
                            patch_size=16, batch_size=2, samples_per_epoch=2, num_workers=0)
    data.setup("fit")
    with pytest.raises(DatasetLayoutError, match="none of the 4 training images can be read"):
        next(iter(data.train_dataloader()))


def test_enhance_folder_reports_bad_files_and_writes_the_rest(tmp_path, enhancer_ckpt, capsys):
    good, bad = good_files(tmp_path / "in"), bad_files(tmp_path / "in")
    status = enhance(str(tmp_path / "in"), str(tmp_path / "out"), ckpt=str(enhancer_ckpt))
    assert status == 1
    err = capsys.readouterr().err
    for name in bad:
        assert name in err
    assert "tiny_1x1.png" in err and "too small" in err  # instance norm needs more than one pixel
    assert "Traceback" not in err
    for name, (height, width) in good.items():
        if name == "tiny_1x1.png":
            assert not (tmp_path / "out" / name).exists()
            continue
        assert read_image(tmp_path / "out" / name).shape == (height, width, 3), name
    assert not (tmp_path / "out" / "text.jpg").exists()
