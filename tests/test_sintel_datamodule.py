"""SintelDataModule on the real MPI Sintel samples, tiny official/mpi_main trees, and the demo triplets."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from datamodules.intrinsic_demo import demo_intrinsics
from datamodules.io import read_image, write_image
from datamodules.sintel import ALBEDO_EPS, SintelDataModule, composition_scale, derive_shading
from datamodules.sintel_layouts import detect_layout
from mobile2dslr.errors import DatasetLayoutError, UserError

FRAMES = ("0001", "0003", "0005", "0007", "0009", "0011")
KINDS = ("image", "gt_albedo", "gt_shading")


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def mpi(shared_dir: Path) -> Path:
    return shared_dir / "data" / "sintel" / "data" / "MPI"


@pytest.fixture(scope="module")
def sample(mpi: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame 0001's image, albedo and shading (1024x436)."""
    return tuple(read_image(mpi / f"{kind}0001.png") for kind in KINDS)


def _copy_numbered(mpi: Path, folder: Path, frames: tuple[str, ...], shading: bool) -> Path:
    for frame in frames:
        for kind in KINDS if shading else KINDS[:2]:
            shutil.copy(mpi / f"{kind}{frame}.png", folder / f"{kind}{frame}.png")
    return folder


def _crop(maps: tuple[np.ndarray, ...], index: int) -> list[np.ndarray]:
    """A 48x64 crop of the sample's maps, a different place per index."""
    top, left = 60 + 37 * index, 80 + 71 * index
    return [m[top : top + 48, left : left + 64] for m in maps]


def _assert_composes(item_image, item_albedo, item_shading, scale: float, tolerance: float = 2e-3) -> None:
    """image == scale·albedo·shading wherever the albedo is usable (derived or demo shading)."""
    image, albedo, shading = (np.asarray(m, dtype=np.float64) for m in (item_image, item_albedo, item_shading))
    usable = albedo >= ALBEDO_EPS
    assert usable.mean() > 0.9
    assert np.abs(image - scale * albedo * shading)[usable].max() < tolerance


def test_composition_scale_fits_every_real_sample(mpi: Path) -> None:
    for frame in FRAMES:
        image, albedo, shading = (read_image(mpi / f"{kind}{frame}.png") for kind in KINDS)
        k = composition_scale(image, albedo, shading)
        rmse = float(np.sqrt(np.mean((image - k * albedo * shading) ** 2)))
        print(f"frame {frame}: k={k:.4f} rmse={rmse:.4f}")
        assert 1.0 < k < 2.0 and rmse < 0.1
        for other in (k - 0.05, k + 0.05, 1.0):  # k is the least-squares minimum
            assert np.sqrt(np.mean((image - other * albedo * shading) ** 2)) > rmse


def test_numbered_layout_names_and_frame_split(mpi: Path) -> None:
    np.random.seed(0)
    assert detect_layout(mpi, "auto") == "numbered"
    dm = SintelDataModule(
        str(mpi), val_frames=["0011"], patch_size=32, batch_size=15, samples_per_epoch=30, max_side=128
    )
    dm.setup("fit")
    assert [f.name for f in dm.train_split] == list(FRAMES[:-1]) and [f.name for f in dm.val_split] == ["0011"]
    assert all(f.scene is None and f.shading is not None for f in dm.train_split)
    seen = {name for batch in dm.train_dataloader() for name in batch["name"]}
    assert seen == set(FRAMES[:-1])  # 30 draws: every training frame, never the held-out one
    (val,) = list(dm.val_dataloader())
    assert val["name"] == ["0011"] and val["image"].shape == (1, 3, 54, 128)  # max_side=128 of 1024x436
    assert [b["name"] for b in dm.test_dataloader()] == [b["name"] for b in dm.predict_dataloader()] == [["0011"]]
    # YAML and shells drop leading zeros: 11 is frame 0011.
    dm = SintelDataModule(str(mpi), val_frames=["11"])
    dm.setup()
    assert [f.name for f in dm.val_split] == ["0011"]


def test_shipped_shading_and_its_scale(mpi: Path, sample) -> None:
    dm = SintelDataModule(str(mpi), val_frames=["0001"], val_crop=96)
    dm.setup("validate")
    (item,) = list(dm.val_dataloader())
    image, albedo, shading = sample
    np.testing.assert_array_equal(_hwc(item["shading"][0]), shading[170:266, 464:560])  # the file, centre crop
    assert item["scale"].dtype == torch.float32
    assert item["scale"].item() == pytest.approx(composition_scale(*sample), rel=1e-6)


@pytest.mark.parametrize("val_frames, message", [
    (None, r"set --data.val_frames \(this layout has no scene names\)"),
    (["0002"], r"unknown val_frames \['0002'\]; valid frames: 0001, 0003, 0005, 0007, 0009, 0011"),
    (list(FRAMES), "leaves no training frame"),
])
def test_numbered_layout_needs_known_val_frames(mpi: Path, val_frames, message: str) -> None:
    dm = SintelDataModule(str(mpi), val_frames=val_frames)
    with pytest.raises(UserError, match=message):
        dm.setup()
    with pytest.raises(UserError, match="no scene names"):
        SintelDataModule(str(mpi), val_scenes=["alley_1"], val_frames=["0011"]).setup()


def test_derived_shading_is_not_clipped_and_composes_exactly(mpi: Path, tmp_path: Path) -> None:
    np.random.seed(1)
    root = _copy_numbered(mpi, tmp_path, ("0001", "0003"), shading=False)
    dm = SintelDataModule(str(root), val_frames=["0003"], patch_size=64, batch_size=6, samples_per_epoch=6)
    dm.setup()
    assert dm.val_split[0].shading is None
    (val,) = list(dm.val_dataloader())
    image, albedo, shading = (_hwc(val[k][0]) for k in ("image", "albedo", "shading"))
    scale = val["scale"].item()
    _assert_composes(image, albedo, shading, scale)
    usable = albedo >= ALBEDO_EPS
    over = usable & (image / np.maximum(albedo, ALBEDO_EPS) > 1.05 * scale)  # I/A exceeds the scale here
    assert over.sum() > 100 and shading[over].min() > 1.04 and shading.max() > 1.5  # not capped at 1
    assert np.percentile(shading[usable], 99) == pytest.approx(1.0, abs=1e-3)  # the documented normalisation
    assert 1.0 < scale < 3.0 and shading.min() >= 0
    # Training crops: image, albedo and shading cut and flipped alike, or the product breaks.
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == batch["albedo"].shape == batch["shading"].shape == (6, 3, 64, 64)
    assert all(t.dtype == torch.float32 for t in (batch["image"], batch["albedo"], batch["shading"], batch["scale"]))
    for i in range(6):
        assert batch["name"][i] == "0001"
        _assert_composes(*(_hwc(batch[k][i]) for k in ("image", "albedo", "shading")), batch["scale"][i].item())
        assert np.abs(_hwc(batch["image"][i]) - _hwc(batch["albedo"][i])).mean() > 0.01  # not the same map twice


def test_derive_shading_guards_black_albedo() -> None:
    image = np.full((5, 5, 3), 0.4, dtype=np.float32)
    albedo = np.full((5, 5, 3), 0.5, dtype=np.float32)
    albedo[2, 2] = 0.0  # no reflectance at all: take the neighbours' shading
    albedo[0, 0, 2] = 0.0  # one dead channel: the grey ratio of the others
    image[0, 0] = (0.2, 0.4, 0.9)
    shading, scale = derive_shading(image, albedo)
    assert np.isfinite(shading).all() and scale == pytest.approx(0.8)
    assert shading[2, 2] == pytest.approx([1.0, 1.0, 1.0])
    assert shading[0, 0] == pytest.approx([0.5, 1.0, 0.75])


def _official_tree(root: Path, sample, shading_scenes: tuple[str, ...]) -> Path:
    for index, (scene, frame) in enumerate((s, f) for s in ("alley_1", "bamboo_2", "cave_4") for f in (1, 2)):
        image, albedo, shading = _crop(sample, index)
        name = f"{scene}/frame_{frame:04d}.png"
        write_image(root / "training" / "clean" / name, image)
        write_image(root / "training" / "final" / name, image * 0.5)  # tell the passes apart
        write_image(root / "training" / "albedo" / name, albedo)
        if scene in shading_scenes:
            write_image(root / "training" / "shading" / name, shading)
    return root


def test_official_layout_scene_split_and_passes(tmp_path: Path, sample) -> None:
    root = _official_tree(tmp_path, sample, shading_scenes=("alley_1",))
    assert detect_layout(root, "auto") == "official"
    dm = SintelDataModule(str(root), patch_size=32, batch_size=4, samples_per_epoch=4)
    dm.setup()
    train, val = {f.scene for f in dm.train_split}, {f.scene for f in dm.val_split}
    assert train | val == {"alley_1", "bamboo_2", "cave_4"} and not train & val and len(val) == 1  # default ~20 %
    assert sorted(f.name for f in dm.train_split + dm.val_split)[:2] == ["alley_1/frame_0001", "alley_1/frame_0002"]
    assert all((f.shading is not None) == (f.scene == "alley_1") for f in dm.train_split + dm.val_split)
    for training_root, pass_name, factor in ((root, "final", 0.5), (root / "training", "clean", 1.0)):
        dm = SintelDataModule(str(training_root), pass_name=pass_name, val_scenes=["cave_4"])
        dm.setup()
        assert {f.scene for f in dm.train_split} == {"alley_1", "bamboo_2"}
        batch = next(iter(dm.val_dataloader()))
        expected = read_image(root / "training" / pass_name / "cave_4" / "frame_0001.png")
        assert batch["name"] == ["cave_4/frame_0001"]
        np.testing.assert_array_equal(_hwc(batch["image"][0]), expected)
        assert np.abs(expected - factor * _crop(sample, 4)[0]).max() < 1 / 255 + 1e-6


def test_mpi_main_layout_scene_split_and_missing_albedo(tmp_path: Path, sample) -> None:
    scenes = ("alley_1", "bamboo_2", "cave_4")
    for index, (scene, frame) in enumerate((s, f) for s in scenes for f in (1, 2)):
        image, albedo, _ = _crop(sample, index)
        write_image(tmp_path / "MPI-main-clean" / f"{scene}_frame_{frame:04d}.png", image)
        write_image(tmp_path / "MPI-main-final" / f"{scene}_frame_{frame:04d}.png", 1 - image)
        if (scene, frame) != ("cave_4", 2):
            write_image(tmp_path / "MPI-main-albedo" / f"{scene}_frame_{frame:04d}.png", albedo)
    unknown = r"unknown val_scenes \['alley_2'\]; valid scenes: alley_1, bamboo_2, cave_4"
    with pytest.raises(UserError, match=unknown), pytest.warns(UserWarning, match="without albedo"):
        SintelDataModule(str(tmp_path), val_scenes=["alley_2"]).setup()
    dm = SintelDataModule(str(tmp_path), layout="mpi_main", pass_name="final", val_scenes=["bamboo_2"], max_side=32)
    with pytest.warns(UserWarning, match=r"skipping 1 frame\(s\) without albedo: cave_4/frame_0002"):
        dm.setup()
    assert [f.name for f in dm.train_split] == ["alley_1/frame_0001", "alley_1/frame_0002", "cave_4/frame_0001"]
    assert [f.name for f in dm.val_split] == ["bamboo_2/frame_0001", "bamboo_2/frame_0002"]
    item = next(iter(dm.val_dataloader()))
    assert item["image"].shape == (1, 3, 24, 32)  # max_side: 64x48 → 32x24, the three maps alike
    assert item["albedo"].shape == item["shading"].shape == item["image"].shape
    final = read_image(tmp_path / "MPI-main-final" / "bamboo_2_frame_0001.png")
    assert abs(item["image"].mean().item() - final.mean()) < 2e-3  # the final pass, area-downscaled
    _assert_composes(*(_hwc(item[k][0]) for k in ("image", "albedo", "shading")), item["scale"].item(), 1e-4)
    with pytest.raises(UserError, match="val_frames is for the numbered layout"), pytest.warns(UserWarning):
        SintelDataModule(str(tmp_path), val_frames=["0001"]).setup()


def test_wrong_layout_names_the_folder(tmp_path: Path, mpi: Path) -> None:
    write_image(tmp_path / "photos" / "holiday.png", np.zeros((8, 8, 3), np.float32))
    for root, layout in ((tmp_path / "photos", "auto"), (tmp_path / "missing", "auto"), (mpi, "official")):
        with pytest.raises(DatasetLayoutError) as error:
            SintelDataModule(str(root), layout=layout, val_frames=["0011"]).setup()
        message = str(error.value)
        assert message.startswith(str(root)) and "\n" not in message
        assert all(name in message for name in ("official", "mpi_main", "numbered", "gt_albedoNNNN.png"))
    (tmp_path / "MPI-main-albedo").mkdir()
    with pytest.raises(DatasetLayoutError, match="MPI-main-clean: render pass folder not found"):
        SintelDataModule(str(tmp_path)).setup()


def test_truncated_training_png_is_skipped_with_a_warning(mpi: Path, tmp_path: Path, caplog) -> None:
    np.random.seed(0)
    root = _copy_numbered(mpi, tmp_path, ("0001", "0003", "0011"), shading=True)
    data = (root / "image0003.png").read_bytes()
    (root / "image0003.png").write_bytes(data[: len(data) // 3])
    dm = SintelDataModule(str(root), val_frames=["0011"], patch_size=16, batch_size=8, samples_per_epoch=8, max_side=64)
    dm.setup()
    with caplog.at_level(logging.WARNING):
        batch = next(iter(dm.train_dataloader()))
    assert batch["name"] == ["0001"] * 8
    assert "skipping unreadable training image" in caplog.text and "image0003.png" in caplog.text


@pytest.fixture(scope="module")
def demo_module() -> SintelDataModule:
    dm = SintelDataModule(None, patch_size=48, batch_size=4, samples_per_epoch=4)
    dm.setup()
    return dm


def test_demo_triplets_compose_exactly_with_smooth_positive_shading(demo_module: SintelDataModule) -> None:
    train = {f.scene for f in demo_module.train_split}
    assert train == {"astronaut", "rocket", "motorcycle"}
    assert {f.scene for f in demo_module.val_split} == {"chelsea", "coffee"}
    for name, image, albedo, shading in demo_intrinsics("coffee") + demo_intrinsics("motorcycle"):
        assert np.abs(image - albedo * shading).max() < 1e-5 and 0 <= image.min() and image.max() <= 1
        assert shading.min() > 0.2 and shading.max() > 1.0 and albedo.min() > 0
        # Smooth: little left after a blur, unlike the piecewise-constant albedo (relative to each mean).
        detail = [np.abs(m - ndimage.gaussian_filter(m, (2, 2, 0))).mean() / m.mean() for m in (shading, albedo)]
        assert detail[0] < 0.1 * detail[1], (name, detail)
        assert np.abs(shading[..., 0] - shading[..., 1]).mean() < 0.1 * shading.mean()  # mostly grey
    again = demo_intrinsics("coffee", seed=1)[0]
    assert not np.allclose(again[3], demo_intrinsics("coffee")[0][3])  # the seed moves the lights
    batch = next(iter(demo_module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 48, 48)
    assert set(batch["name"]) <= {"astronaut", "rocket", "motorcycle_left", "motorcycle_right"}
    for i in range(4):
        _assert_composes(*(_hwc(batch[k][i]) for k in ("image", "albedo", "shading")), batch["scale"][i].item(), 1e-5)
        assert batch["scale"][i].item() == pytest.approx(1.0, abs=1e-5)
    assert [b["name"][0] for b in demo_module.val_dataloader()] == ["chelsea", "coffee"]
    with pytest.raises(UserError, match="unknown val_scenes"):
        SintelDataModule(None, val_scenes=["lena"]).setup()
