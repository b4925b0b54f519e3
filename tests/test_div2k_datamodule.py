"""DIV2KDataModule on a tiny DIV2K tree written here, plus Urban100 photos as an extra folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import skimage.data
import torch
from jsonargparse import ArgumentParser
from skimage.util import img_as_float32

from datamodules import DIV2KDataModule, PhoneDegradation, write_image
from mobile2dslr.errors import DatasetLayoutError


def _div2k_tree(root: Path, valid: bool = True) -> Path:
    """DIV2K naming with small crops of a real photo (the real images are 2K)."""
    photo = img_as_float32(skimage.data.astronaut())
    for i in range(1, 4):
        write_image(root / "DIV2K_train_HR" / f"{i:04d}.png", photo[40 * i : 40 * i + 96, 30 * i : 30 * i + 120])
    if valid:
        for i in (801, 802):
            write_image(root / "DIV2K_valid_HR" / f"{i:04d}.png", photo[i - 700 : i - 600, 200:330])
    return root


@pytest.fixture(scope="module")
def urban(shared_dir: Path) -> str:
    return str(shared_dir / "data" / "hr" / "CUrban100")


def test_training_batches_mix_div2k_and_extra_folders(tmp_path: Path, urban: str) -> None:
    pl.seed_everything(0)
    dm = DIV2KDataModule(str(_div2k_tree(tmp_path)), extra_hq_dirs=[urban], patch_size=64, batch_size=8, num_workers=0)
    dm.setup("fit")
    assert dm.train_names[:3] == ["0001", "0002", "0003"] and len(dm.train_names) == 13
    assert dm.train_names[3] == "CUrban100/img_004" and dm.val_names == ["0801", "0802"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == batch["hq"].shape == (8, 3, 64, 64)
    for key in ("lq", "hq"):
        assert batch[key].dtype == torch.float32 and 0 <= batch[key].min() and batch[key].max() <= 1
    assert (batch["lq"] - batch["hq"]).abs().mean(dim=(1, 2, 3)).min() > 0.01  # every pair differs
    assert batch["lq"].mean() < 0.9 * batch["hq"].mean()
    # Reproducible under seed_everything.
    pl.seed_everything(0)
    again = next(iter(dm.train_dataloader()))
    assert torch.equal(again["lq"], batch["lq"]) and again["name"] == batch["name"]


def test_validation_is_deterministic_and_cropped(tmp_path: Path) -> None:
    dm = DIV2KDataModule(str(_div2k_tree(tmp_path)), val_crop=64, num_workers=0)
    dm.setup("validate")
    first = list(dm.val_dataloader())
    second = _fresh_val(tmp_path)  # a new DataModule: nothing cached
    assert [b["name"][0] for b in first] == ["0801", "0802"]
    for a, b in zip(first, second):
        assert a["lq"].shape == (1, 3, 64, 64)
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["hq"], b["hq"])
        assert a["lq"].mean() < a["hq"].mean()
    np.random.seed(99)  # validation ignores the global generator
    assert torch.equal(next(iter(dm.val_dataloader()))["lq"], first[0]["lq"])
    assert not torch.equal(first[0]["lq"][..., :60, :60], first[1]["lq"][..., :60, :60])


def _fresh_val(root: Path) -> list[dict]:
    dm = DIV2KDataModule(str(root), val_crop=64, num_workers=0)
    dm.setup("validate")
    return list(dm.val_dataloader())


def test_without_valid_folder_the_last_images_are_held_out(tmp_path: Path, urban: str) -> None:
    dm = DIV2KDataModule(str(_div2k_tree(tmp_path, valid=False)), extra_hq_dirs=[urban], val_count=2, num_workers=0)
    dm.setup("fit")
    assert dm.val_names == ["CUrban100/img_069", "CUrban100/img_078"]
    assert not set(dm.val_names) & set(dm.train_names) and len(dm.train_names) == 11
    only_extra = DIV2KDataModule(extra_hq_dirs=[urban], val_count=3, num_workers=0)
    only_extra.setup("fit")
    assert len(only_extra.train_names) == 7 and len(only_extra.val_names) == 3


def test_wrong_layout_errors_name_the_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "0001.png", np.zeros((8, 8, 3)))
    with pytest.raises(DatasetLayoutError, match=r"DIV2K layout not found.*<root>/DIV2K_train_HR/0001.png"):
        DIV2KDataModule(str(tmp_path)).setup("fit")
    with pytest.raises(DatasetLayoutError, match="DIV2K_train_HR"):
        DIV2KDataModule()
    with pytest.raises(DatasetLayoutError, match="not found"):
        DIV2KDataModule(extra_hq_dirs=[str(tmp_path / "nope")]).setup("fit")


def test_degradation_is_configurable_from_yaml() -> None:
    parser = ArgumentParser()
    parser.add_argument("--data", type=DIV2KDataModule)
    config = parser.parse_string(
        "data:\n"
        "  class_path: datamodules.DIV2KDataModule\n"
        "  init_args:\n"
        "    root: /somewhere/DIV2K\n"
        "    degradation:\n"
        "      class_path: datamodules.PhoneDegradation\n"
        "      init_args: {noise_p: 0.0, exposure_range: [0.5, 0.6], enabled: [exposure, noise]}\n"
    )
    degradation = parser.instantiate(config).data.degradation
    assert isinstance(degradation, PhoneDegradation) and degradation.enabled == ("exposure", "noise")
    clean = np.full((16, 16, 3), 0.5, dtype=np.float32)
    out = degradation.degrade(clean, seed=0)
    assert out.std() < 1e-6 and out.mean() < 0.5 * 0.6  # exposure only: uniform and dark
    # The default is recorded in full by --print_config / the saved config.
    defaults = ArgumentParser()
    defaults.add_class_arguments(DIV2KDataModule, "data")
    assert "jpeg_quality_range" in defaults.dump(defaults.get_defaults())
