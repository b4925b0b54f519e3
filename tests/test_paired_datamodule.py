"""PairedDataModule on the real DPED, LOL and PolyU samples, plus tiny trees for edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import PairedDataModule, read_image, write_image
from mobile2dslr.errors import DatasetLayoutError, UserError


def _d4_variants(image: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/quarter turns of an (H, W, C) image."""
    return [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def dped_root(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dped"


@pytest.mark.parametrize("sub", ["", "iphone"])
def test_dped_train_batch_is_full_and_really_paired(dped_root: Path, sub: str) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    dm = PairedDataModule(str(dped_root / sub) if sub else str(dped_root), num_workers=0)
    dm.setup("fit")
    assert (len(dm.train_pairs), len(dm.val_pairs)) == (12, 8)
    loader = dm.train_dataloader()
    assert loader.drop_last and loader.batch_size == 50
    batch = next(iter(loader))
    assert batch["lq"].shape == batch["hq"].shape == (50, 3, 100, 100)
    assert batch["lq"].dtype == torch.float32 and 0 <= batch["lq"].min() and batch["hq"].max() <= 1
    # patch_size 100 = the whole DPED patch, so each item is one of the 8 flips/turns of
    # the decoded files; LQ and HQ must have been given the same one.
    root = dped_root / "iphone" / "training_data"
    transforms_seen = set()
    for lq, hq, name in zip(batch["lq"], batch["hq"], batch["name"]):
        canon = _d4_variants(read_image(root / "canon" / f"{name}.png"))
        phone = _d4_variants(read_image(root / "iphone" / f"{name}.png"))
        matches = [k for k, variant in enumerate(canon) if np.array_equal(variant, _hwc(hq))]
        assert matches, f"HQ item {name} is not a flip/turn of canon/{name}.png"
        assert any(np.array_equal(phone[k], _hwc(lq)) for k in matches), f"LQ of {name} transformed differently"
        transforms_seen.add(matches[0])
    assert len(transforms_seen) > 2 and len(set(batch["name"])) > 5
    assert batch["lq"].mean() < batch["hq"].mean()  # the phone is darker than the Canon


def test_dped_small_patches_and_padding(dped_root: Path) -> None:
    for patch in (48, 128):  # 128 > 100: reflect-padded, not a crash
        dm = PairedDataModule(str(dped_root), patch_size=patch, batch_size=4, samples_per_epoch=4, num_workers=0)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["lq"].shape == batch["hq"].shape == (4, 3, patch, patch)


def test_dped_validation_is_deterministic_and_exact(dped_root: Path) -> None:
    dm = PairedDataModule(str(dped_root), num_workers=0)
    dm.setup("validate")
    first = list(dm.val_dataloader())
    second = list(dm.val_dataloader())
    assert [b["name"][0] for b in first] == [str(i) for i in range(8)]
    patches = dped_root / "iphone" / "test_data" / "patches"
    for a, b in zip(first, second):
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["hq"], b["hq"])
        name = a["name"][0]
        np.testing.assert_array_equal(_hwc(a["lq"][0]), read_image(patches / "iphone" / f"{name}.png"))
        np.testing.assert_array_equal(_hwc(a["hq"][0]), read_image(patches / "canon" / f"{name}.png"))
    assert [b["name"][0] for b in dm.test_dataloader()] == [b["name"][0] for b in first]


def test_dped_predict_defaults_to_val_lq_or_a_given_folder(dped_root: Path, shared_dir: Path) -> None:
    dm = PairedDataModule(str(dped_root), num_workers=0)
    dm.setup("predict")
    assert dm.predict_names == [str(i) for i in range(8)]
    full_size = shared_dir / "data" / "dped_fullsize" / "iphone" / "test_data" / "full_size_test_images"
    dm = PairedDataModule(str(dped_root), predict_dir=str(full_size), num_workers=0)
    dm.setup("predict")
    assert dm.predict_names == ["7", "12", "16"]
    item = dm.predict_dataloader().dataset[0]
    assert set(item) == {"lq", "name"} and item["lq"].shape[0] == 3


def test_lol_folders_layout_holds_out_deterministically(shared_dir: Path) -> None:
    root = shared_dir / "data" / "lowlight" / "our485"
    splits = []
    for _ in range(2):
        dm = PairedDataModule(str(root), lq_dir="low", hq_dir="high", patch_size=64, batch_size=4, num_workers=0)
        dm.setup("fit")
        splits.append(([p.name for p in dm.train_pairs], [p.name for p in dm.val_pairs]))
    train, val = splits[0]
    assert splits[0] == splits[1]
    assert len(train) == 9 and len(val) == 1 and not set(train) & set(val)
    assert sorted(train + val, key=int) == ["5", "73", "126", "196", "257", "500", "559", "615", "676", "727"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (4, 3, 64, 64)
    assert batch["lq"].mean() < 0.5 * batch["hq"].mean()  # LOL low images are very dark
    val_item = dm.val_dataloader().dataset[0]
    assert val_item["lq"].shape == (3, 400, 600) and val_item["name"] == val[0]


def test_polyu_suffix_layout_is_detected(shared_dir: Path) -> None:
    root = shared_dir / "data" / "noisy" / "PolyU" / "CroppedImages"
    dm = PairedDataModule(str(root), patch_size=32, batch_size=2, val_crop=128, num_workers=0)
    dm.setup("fit")
    pairs = dm.train_pairs + dm.val_pairs
    assert len(pairs) == 10 and len(dm.val_pairs) == 1
    for pair in pairs:
        assert pair.lq.name == f"{pair.name}_real.JPG" and pair.hq.name == f"{pair.name}_mean.JPG"
    item = dm.val_dataloader().dataset[0]
    assert item["lq"].shape == item["hq"].shape == (3, 128, 128)
    assert 0 < (item["lq"] - item["hq"]).abs().mean() < 0.05  # aligned, only noise differs


def test_missing_root_and_wrong_layout_name_the_expected_layout(tmp_path: Path, shared_dir: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"missing.*training_data/\{<phone>,canon\}") as info:
        PairedDataModule(str(tmp_path / "missing")).setup("fit")
    assert "\n" not in str(info.value)
    lol = shared_dir / "data" / "lowlight" / "our485"
    with pytest.raises(DatasetLayoutError, match=r"DPED layout not found.*training_data/\{<phone>,canon\}"):
        PairedDataModule(str(lol), layout="dped").setup("fit")
    with pytest.raises(DatasetLayoutError, match=r"folders layout not found.*\{lq,hq\}"):
        PairedDataModule(str(lol), layout="folders").setup("fit")
    with pytest.raises(DatasetLayoutError, match=r"dped.*folders.*suffix.*_real"):
        PairedDataModule(str(lol)).setup("fit")  # auto: low/high are not lq/hq


def _tiny_tree(root: Path, lq_names: list[str], hq_names: list[str], lq_size=(30, 40), hq_size=(30, 40)) -> None:
    rng = np.random.default_rng(0)
    for name in lq_names:
        write_image(root / "lq" / name, rng.random((*lq_size, 3)) * 0.5)
    for name in hq_names:
        write_image(root / "hq" / name, rng.random((*hq_size, 3)))


def test_unpaired_files_are_skipped_with_one_warning(tmp_path: Path) -> None:
    _tiny_tree(tmp_path, ["1.png", "2.png", "3.png", "sub/9.png"], ["1.jpg", "2.png", "4.png", "sub/9.tif"])
    dm = PairedDataModule(str(tmp_path), val_fraction=0.3, num_workers=0)
    with pytest.warns(UserWarning, match=r"skipping 2 file\(s\) without a twin: 3, 4"):
        dm.setup("fit")
    assert sorted(p.name for p in dm.train_pairs + dm.val_pairs) == ["1", "2", "sub/9"]


def test_no_pairs_and_bad_sizes_are_errors(tmp_path: Path) -> None:
    _tiny_tree(tmp_path, ["1.png"], ["2.png"])
    with pytest.raises(DatasetLayoutError, match="no LQ/HQ pairs"), pytest.warns(UserWarning):
        PairedDataModule(str(tmp_path)).setup("fit")
    with pytest.raises(UserError, match="samples_per_epoch"):
        PairedDataModule(str(tmp_path), batch_size=8, samples_per_epoch=4)


def test_pairs_of_different_sizes_are_cropped_to_the_common_size(tmp_path: Path) -> None:
    _tiny_tree(tmp_path, ["1.png", "2.png"], ["1.png", "2.png"], lq_size=(30, 40), hq_size=(36, 44))
    dm = PairedDataModule(str(tmp_path), patch_size=16, batch_size=4, samples_per_epoch=4, num_workers=0)
    dm.setup("fit")
    item = dm.val_dataloader().dataset[0]
    assert item["lq"].shape == item["hq"].shape == (3, 30, 40)
    np.testing.assert_array_equal(_hwc(item["hq"]), read_image(dm.val_pairs[0].hq)[:30, :40])
    assert next(iter(dm.train_dataloader()))["hq"].shape == (4, 3, 16, 16)


def test_loader_defaults(dped_root: Path) -> None:
    dm = PairedDataModule(str(dped_root))
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.num_workers == 2 and train.persistent_workers and not train.pin_memory
    assert val.batch_size == 1 and not val.drop_last and len(train) == 10000 // 50
