"""MultiDomainDataModule: mask-vector labels, real pools (DPED, PolyU), demo degradations, validation, config."""

from __future__ import annotations

import collections
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentParser
from scipy import ndimage

from datamodules.io import read_image, write_image
from datamodules.multi_domain import DOMAINS, MultiDomainDataModule, MultiDomainPatchDataset, label_vector
from mobile2dslr.errors import UserError


@pytest.fixture()
def data(shared_dir: Path) -> Path:
    return shared_dir / "data"


def _real(data: Path, **kwargs) -> MultiDomainDataModule:
    """Texture from the DPED samples, noise from PolyU's real/mean pairs used as two unpaired pools."""
    polyu = str(data / "noisy" / "PolyU" / "CroppedImages")
    args = dict(noisy_root=polyu, noisy_pattern="*_real.*", clean_dirs=[polyu], clean_pattern="*_mean.*")
    dm = MultiDomainDataModule(texture_root=str(data / "dped"), patch_size=32, samples_per_epoch=64, **args, **kwargs)
    dm.setup("fit")
    return dm


def _draw(dm: MultiDomainDataModule, count: int, seed: int = 0, patch_size: int = 32) -> list[dict]:
    np.random.seed(seed)  # item_generators() draws from NumPy's global generator
    dataset = MultiDomainPatchDataset(dm.pools, dm.domain_weights, patch_size, count)
    return [dataset[i] for i in range(count)]


def _domain(item: dict) -> tuple[int, int]:
    dataset = int(item["dataset"])
    return dataset, int(item["label"][dataset])


def _noise_level(image: torch.Tensor) -> float:
    """Median |Laplacian| of the gray image: robust to edges, grows with pixel noise.

    (skimage's estimate_sigma needs PyWavelets, which is not installed.)
    """
    return float(np.median(np.abs(ndimage.laplace(image.numpy().mean(axis=0)))))


def test_label_vector_hand_checked_cases() -> None:
    assert DOMAINS == ("color", "texture", "noise")
    cases = {(1, 1): ([0, 1, 0], [0, 1, 0]), (0, 0): ([0, 0, 0], [1, 0, 0]), (2, 1): ([0, 0, 1], [0, 0, 1])}
    for (dataset, quality), (label, mask) in cases.items():
        got_label, got_mask = label_vector(dataset, quality)
        assert got_label.dtype == got_mask.dtype == torch.float32
        assert got_label.tolist() == label and got_mask.tolist() == mask
    with pytest.raises(ValueError):
        label_vector(3, 0)


def test_batches_carry_one_mask_bit_and_labels_only_inside_it() -> None:
    pl.seed_everything(0)
    dm = MultiDomainDataModule(patch_size=32, batch_size=16, samples_per_epoch=32)
    dm.setup("fit")
    assert dm.origins == ("demo", "demo", "demo") and dm.patch_size == 32
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (16, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["dataset"].dtype == torch.int64 and batch["label"].shape == batch["mask"].shape == (16, 3)
    assert torch.equal(batch["mask"].sum(dim=1), torch.ones(16))
    assert torch.equal(batch["mask"].argmax(dim=1), batch["dataset"])
    assert (batch["label"] * (1 - batch["mask"])).abs().sum() == 0
    for name, dataset, label in zip(batch["name"], batch["dataset"], batch["label"]):
        domain, quality, _ = name.split("/", 2)
        assert domain == DOMAINS[dataset] and label[dataset] == (quality == "high")


def test_real_texture_and_noise_pools(data: Path) -> None:
    dm = _real(data)
    assert dm.origins == (None, "source", "source") and set(dm.pools) == {(1, 0), (1, 1), (2, 0), (2, 1)}
    noisy, clean = dm.pools[(2, 0)], dm.pools[(2, 1)]
    assert len(noisy.sources) == len(clean.sources) == 10
    assert all(p.name.endswith("_real.JPG") for p in noisy.sources) and all(p.name.endswith("_mean.JPG") for p in clean.sources)
    phone, dslr = dm.pools[(1, 0)], dm.pools[(1, 1)]  # DPED's training_data only (12 pairs), never its test patches
    assert {p.parent.name for p in phone.sources} == {"iphone"} and {p.parent.name for p in dslr.sources} == {"canon"}
    assert len(phone.sources) == 12 and all("training_data" in p.parts for p in phone.sources + dslr.sources)
    items = _draw(dm, 120)
    assert all(item["mask"][0] == 0 and item["label"][0] == 0 for item in items)  # colour never drawn
    assert {_domain(item) for item in items} == {(1, 0), (1, 1), (2, 0), (2, 1)}


def _is_crop_of(patch: np.ndarray, image: np.ndarray) -> bool:
    """Whether ``patch`` (any of its 8 flips/rotations) is a window of ``image``, pixel for pixel."""
    for turns in range(4):
        for flip in (False, True):
            view = np.rot90(patch, turns)
            view = np.ascontiguousarray(view[:, ::-1] if flip else view)
            # The best match by OpenCV, then checked exactly (its sums are not exact).
            _, _, (x, y), _ = cv2.minMaxLoc(cv2.matchTemplate(image, view, cv2.TM_SQDIFF))
            if np.array_equal(image[y : y + view.shape[0], x : x + view.shape[1]], view):
                return True
    return False


def test_texture_low_items_are_crops_of_phone_patches(data: Path) -> None:
    dm = _real(data, domain_weights=(0, 1, 0))
    items = [item for item in _draw(dm, 12, seed=3) if _domain(item) == (1, 0)][:3]
    assert items
    training = data / "dped" / "iphone" / "training_data"
    for item in items:
        key = item["name"].removeprefix("texture/low/")
        patch = item["image"].numpy().transpose(1, 2, 0)
        assert _is_crop_of(patch, read_image(training / "iphone" / f"{key}.png"))
        assert not _is_crop_of(patch, read_image(training / "canon" / f"{key}.png"))


def test_noise_low_items_are_noisier_than_clean_ones(data: Path) -> None:
    dm = _real(data, domain_weights=(0, 0, 1))
    levels = collections.defaultdict(list)
    for item in _draw(dm, 80, seed=1, patch_size=64):
        levels[_domain(item)].append(_noise_level(item["image"]))
    assert set(levels) == {(2, 0), (2, 1)}
    assert np.mean(levels[(2, 0)]) > 1.2 * np.mean(levels[(2, 1)])


def test_demo_degradations_change_the_right_statistic() -> None:
    dm = MultiDomainDataModule(patch_size=48, samples_per_epoch=64)
    dm.setup("fit")
    brightness, noise = collections.defaultdict(list), collections.defaultdict(list)
    for item in _draw(dm, 600, patch_size=48):
        brightness[_domain(item)].append(float(item["image"].mean()))
        noise[_domain(item)].append(_noise_level(item["image"]))
    ratio = {key: (np.mean(brightness[(d, 0)]) / np.mean(brightness[(d, 1)]), np.mean(noise[(d, 0)]) / np.mean(noise[(d, 1)]))
             for key, d in (("color", 0), ("texture", 1), ("noise", 2))}
    # Colour: darker (exposure), no added high frequencies. Noise: same brightness, much more high frequency.
    assert ratio["color"][0] < 0.85 and ratio["color"][1] < 1.1
    assert 0.85 < ratio["noise"][0] < 1.15 and ratio["noise"][1] > 1.5
    # Texture: blur/resampling/JPEG removes high frequencies without darkening.
    assert 0.85 < ratio["texture"][0] < 1.15 and ratio["texture"][1] < 0.8


def test_domain_weights_and_missing_sources(data: Path) -> None:
    dm = MultiDomainDataModule(domain_weights=(0, 1, 0), patch_size=32)
    dm.setup("fit")
    assert set(dm.pools) == {(1, 0), (1, 1)}
    items = _draw(dm, 40)
    assert {int(item["dataset"]) for item in items} == {1} and {_domain(item)[1] for item in items} == {0, 1}
    weighted = MultiDomainDataModule(domain_weights=(1, 3, 0), patch_size=16)
    weighted.setup("fit")
    share = np.mean([int(item["dataset"]) == 1 for item in _draw(weighted, 400, patch_size=16)])
    assert 0.68 < share < 0.82  # texture has 3/4 of the weight of the two drawn datasets
    only_texture = MultiDomainDataModule(texture_root=str(data / "dped"))
    assert only_texture.origins == (None, "source", None)
    assert MultiDomainDataModule(texture_root=str(data / "dped"), demo=True).origins == ("demo", "source", "demo")
    with pytest.raises(UserError, match="color_root.*texture_root.*noisy_root"):
        MultiDomainDataModule(demo=False)
    with pytest.raises(UserError, match="clean_dirs"):
        MultiDomainDataModule(noisy_root=str(data / "noisy"))
    with pytest.raises(UserError, match="weight 0"):
        MultiDomainDataModule(texture_root=str(data / "dped"), domain_weights=(1, 0, 1))


def test_unreadable_training_file_is_skipped(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    write_image(tmp_path / "noisy" / "a.png", image)
    write_image(tmp_path / "clean" / "good.png", image)
    (tmp_path / "clean" / "broken.png").write_bytes(b"not a png")
    dm = MultiDomainDataModule(noisy_root=str(tmp_path / "noisy"), clean_dirs=[str(tmp_path / "clean")], patch_size=16)
    dm.setup("fit")
    clean_names = {item["name"] for item in _draw(dm, 30) if _domain(item) == (2, 1)}
    assert clean_names == {"noise/high/clean/good"}


def test_noise_low_reads_the_official_dnd_layout(tmp_path: Path, shared_dir: Path) -> None:
    pytest.importorskip("datamodules.dnd_format")
    dnd_files = pytest.importorskip("dnd_files")  # pytest puts tests/ on sys.path
    noisy = np.random.default_rng(0).random((48, 40, 3), dtype=np.float32)
    root = dnd_files.write_dnd_tree(tmp_path / "dnd", [noisy], [dnd_files.grid_boxes(48, 40, 16)])
    clean = str(shared_dir / "data" / "hr" / "CUrban100")
    dm = MultiDomainDataModule(noisy_root=str(root), clean_dirs=[clean], domain_weights=(0, 0, 1), patch_size=40)
    dm.setup("fit")
    assert dm.pools[(2, 0)].names == ["0001"] and len(dm.pools[(2, 1)].sources) == 10
    low = next(item for item in _draw(dm, 10, patch_size=40) if _domain(item) == (2, 0))
    assert low["name"] == "noise/low/0001" and _is_crop_of(low["image"].numpy().transpose(1, 2, 0), noisy)


def _validation(**kwargs) -> list[dict]:
    dm = MultiDomainDataModule(**kwargs)
    dm.setup("validate")
    return list(dm.val_dataloader())


def test_demo_validation_is_held_out_and_deterministic() -> None:
    first, second = _validation(val_crop=64), _validation(val_crop=64)
    assert [batch["name"][0] for batch in first] == ["chelsea", "coffee"]
    for a, b in zip(first, second):
        assert a["lq"].shape == a["hq"].shape == (1, 3, 64, 64)
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["hq"], b["hq"])
        assert a["lq"].mean() < a["hq"].mean()  # the full phone degradation darkens
    dm = MultiDomainDataModule()
    dm.setup("fit")
    trained = {name for pool in dm.pools.values() for name in pool.names}
    assert not trained & {"chelsea", "coffee"} and "astronaut" in trained


def test_val_root_reads_paired_folders(data: Path) -> None:
    batches = _validation(val_root=str(data / "lowlight" / "our485"), val_lq_dir="low", val_hq_dir="high", val_crop=32)
    assert len(batches) == 10 and batches[0]["name"] == ["5"]  # natural order
    assert all(batch["lq"].shape == (1, 3, 32, 32) for batch in batches)
    assert np.mean([float(batch["lq"].mean() < batch["hq"].mean()) for batch in batches]) > 0.8  # LOL: low is dark


def test_jsonargparse_builds_it_from_yaml(data: Path) -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(MultiDomainDataModule, "data")
    default = parser.instantiate_classes(parser.parse_args([])).data
    assert default.low_degradations[0].enabled == ("exposure", "color_cast")
    assert default.low_degradations[2].enabled == ("noise",)
    config = parser.parse_string(
        f"""
data:
  texture_root: {data / "dped"}
  domain_weights: [1, 2, 0]
  demo: true
  patch_size: 24
  color_degradation:
    class_path: datamodules.degradations.PhoneDegradation
    init_args:
      enabled: [exposure]
      exposure_range: [0.5, 0.5]
      gamma_range: [1.0, 1.0]
"""
    )
    dm = parser.instantiate_classes(config).data
    assert dm.origins == ("demo", "source", "demo") and dm.domain_weights == (1.0, 2.0, 0.0) and dm.patch_size == 24
    dm.setup("fit")
    assert set(dm.pools) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    low = next(item for item in _draw(dm, 20, patch_size=24) if _domain(item) == (0, 0))
    name = low["name"].removeprefix("color/low/")
    clean = dm.pools[(0, 1)].sources[dm.pools[(0, 1)].names.index(name)]
    # Exposure x0.5 only: every pixel of the patch is a pixel of the clean photo halved.
    values = np.unique(np.round(clean * 0.5, 5))
    assert np.isin(np.round(low["image"].numpy(), 5), values).mean() > 0.95
