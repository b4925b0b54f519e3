"""UnpairedDataModule (UPR): demo data, real folders of any sizes, references CSV pairing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import UnpairedDataModule, read_image, write_image
from mobile2dslr.errors import DatasetLayoutError, UserError


def _upr_tree(root: Path, shared_dir: Path) -> Path:
    """lq/: the 3 DPED phone patches 0-2 plus a 2048px full-size photo; hq/: 3 Canon patches + an Urban100 photo."""
    data = shared_dir / "data"
    (root / "lq" / "sub").mkdir(parents=True)
    (root / "hq").mkdir()
    for i in range(3):
        write_image(root / "lq" / f"p{i}.png", read_image(data / f"dped/iphone/training_data/iphone/{i}.png"))
        write_image(root / "hq" / f"c{i}.png", read_image(data / f"dped/iphone/training_data/canon/{i}.png"))
    full = data / "dped_fullsize/iphone/test_data/full_size_test_images/16.jpg"
    (root / "lq" / "sub" / "16.jpg").write_bytes(full.read_bytes())
    (root / "hq" / "img_047.png").write_bytes((data / "hr/CUrban100/img_047.png").read_bytes())
    return root


def test_demo_data_trains_on_degraded_scenes_with_clean_references() -> None:
    np.random.seed(0)
    dm = UnpairedDataModule(patch_size=48, batch_size=4, samples_per_epoch=4, num_workers=0)
    dm.setup("fit")
    held = {"chelsea", "coffee"}
    assert {name for name, _ in dm.val_lq} == held
    assert not held & {name for name, _ in dm.train_lq} and not held & {name for name, _ in dm.refs}
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == batch["ref"].shape == (4, 3, 48, 48)
    assert set(batch["ref_name"]) <= {name for name, _ in dm.refs}
    # The phone side is degraded: its photos differ from the clean professional versions.
    name, lq = dm.train_lq[0]
    clean = dict(dm.refs)[name]
    assert np.abs(lq - clean).mean() > 0.01
    val = next(iter(dm.val_dataloader()))
    assert val["lq"].shape == val["hq"].shape == val["ref"].shape == (1, 3, 256, 256)
    again = next(iter(dm.val_dataloader()))
    assert torch.equal(val["lq"], again["lq"]) and val["ref_name"] == again["ref_name"]


def test_folders_any_sizes_and_downscaling(tmp_path: Path, shared_dir: Path) -> None:
    root = _upr_tree(tmp_path, shared_dir)
    np.random.seed(1)
    dm = UnpairedDataModule(str(root), patch_size=64, max_side=512, batch_size=8, samples_per_epoch=8, num_workers=0, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.train_lq) + len(dm.val_lq) == 4 and len(dm.val_lq) == 1 and len(dm.refs) == 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (8, 3, 64, 64) and 0 <= batch["ref"].min() and batch["ref"].max() <= 1
    val = next(iter(dm.val_dataloader()))
    assert "hq" not in val and val["lq"].shape[-2:] == (256, 256)
    # max_side shrinks the 2048x1536 photo: a whole-image validation item is 512 wide.
    dm_full = UnpairedDataModule(str(root), max_side=512, val_crop=None, num_workers=0, val_fraction=0.25)
    dm_full.setup("fit")
    dm_full.val_lq = [item for item in dm_full.train_lq + dm_full.val_lq if item[0] == "sub/16.jpg"]
    assert next(iter(dm_full.val_dataloader()))["lq"].shape[-2:] == (384, 512)


def test_references_csv_pairs_each_photo_with_its_top_k(tmp_path: Path, shared_dir: Path) -> None:
    root = _upr_tree(tmp_path, shared_dir)
    rows = ["image,reference,rank,distance"]
    for i in range(3):  # p_i's best reference is c_i, then img_047
        rows += [f"p{i}.png,c{i}.png,1,0.1", f"p{i}.png,{root / 'hq' / 'img_047.png'},2,0.2", f"p{i}.png,c{(i + 1) % 3}.png,3,0.3"]
    (root / "refs.csv").write_text("\n".join(rows) + "\n")
    dm = UnpairedDataModule(str(root), references=str(root / "refs.csv"), top_k=1, patch_size=32, batch_size=16, samples_per_epoch=16, num_workers=0, val_fraction=0.25)
    dm.setup("fit")
    np.random.seed(2)
    batch = next(iter(dm.train_dataloader()))
    for name, ref in zip(batch["name"], batch["ref_name"]):
        if name.startswith("p"):
            assert ref == f"c{name[1]}.png", (name, ref)  # top_k=1: always the best one
    dm2 = UnpairedDataModule(str(root), references=str(root / "refs.csv"), top_k=2, patch_size=32, batch_size=32, samples_per_epoch=32, num_workers=0, val_fraction=0.25)
    dm2.setup("fit")
    refs_seen = {ref for name, ref in zip(*(lambda b: (b["name"], b["ref_name"]))(next(iter(dm2.train_dataloader())))) if name.startswith("p")}
    assert refs_seen <= {"c0.png", "c1.png", "c2.png", "img_047.png"} and "img_047.png" in refs_seen


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image,ref\np0.png,c0.png\n", "lacks column"),
        ("image,reference,rank\np0.png,nope.png,1\n", "row 2: reference 'nope.png'"),
        ("image,reference,rank\np0.png,c0.png,first\n", "row 2: rank 'first'"),
    ],
)
def test_bad_references_csv_is_one_line_naming_file_and_row(tmp_path: Path, shared_dir: Path, content: str, message: str) -> None:
    root = _upr_tree(tmp_path, shared_dir)
    (root / "refs.csv").write_text(content)
    dm = UnpairedDataModule(str(root), references=str(root / "refs.csv"), num_workers=0)
    with pytest.raises(DatasetLayoutError, match=message) as info:
        dm.setup("fit")
    assert str(root / "refs.csv") in str(info.value) and "\n" not in str(info.value)


def test_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "lq").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"hq: professional photo folder not found.*expects"):
        UnpairedDataModule(str(tmp_path)).setup("fit")
    (tmp_path / "hq").mkdir()
    with pytest.raises(DatasetLayoutError, match="lq: no images found"):
        UnpairedDataModule(str(tmp_path)).setup("fit")
    with pytest.raises(UserError, match="top_k"):
        UnpairedDataModule(str(tmp_path), top_k=0)
