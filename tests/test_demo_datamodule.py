"""DemoDataModule: scikit-image photos, scene-wise split, deterministic validation, worker seeding."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function

from datamodules import DemoDataModule
from mobile2dslr.errors import UserError


def test_scene_split_keeps_motorcycle_views_together() -> None:
    dm = DemoDataModule()
    dm.setup("fit")
    train = [name for name, _ in dm.train_images]
    val = [name for name, _ in dm.val_images]
    assert val == ["chelsea", "coffee"]
    assert train == ["astronaut", "rocket", "motorcycle_left", "motorcycle_right"]
    dm = DemoDataModule(val_scenes=["motorcycle"])
    dm.setup("fit")
    assert [name for name, _ in dm.val_images] == ["motorcycle_left", "motorcycle_right"]
    assert not any(name.startswith("motorcycle") for name, _ in dm.train_images)


def test_training_batch_is_full_and_degraded() -> None:
    pl.seed_everything(0)
    dm = DemoDataModule()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) == 100 and loader.drop_last
    batch = next(iter(loader))
    assert batch["lq"].shape == batch["hq"].shape == (8, 3, 64, 64)
    assert 0 <= batch["lq"].min() and batch["lq"].max() <= 1
    assert (batch["lq"] - batch["hq"]).abs().mean(dim=(1, 2, 3)).min() > 0.01
    assert batch["lq"].mean() < batch["hq"].mean()
    assert set(batch["name"]) <= {"astronaut", "rocket", "motorcycle_left", "motorcycle_right"}


def test_validation_test_predict_are_deterministic_full_images() -> None:
    def run() -> list[dict]:
        dm = DemoDataModule()
        dm.setup("validate")
        return list(dm.val_dataloader())

    first, second = run(), run()
    assert [b["name"][0] for b in first] == ["chelsea", "coffee"]
    assert first[0]["lq"].shape == (1, 3, 300, 451) and first[1]["hq"].shape == (1, 3, 400, 600)
    for a, b in zip(first, second):
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["hq"], b["hq"])
        assert not torch.equal(a["lq"], a["hq"])
    dm = DemoDataModule(val_crop=128, seed=5)
    dm.setup("predict")
    predicted = list(dm.predict_dataloader())
    assert [b["name"][0] for b in predicted] == ["chelsea", "coffee"]
    assert predicted[0]["lq"].shape == (1, 3, 128, 128)
    assert [b["name"][0] for b in dm.test_dataloader()] == ["chelsea", "coffee"]


def _two_worker_batches(lightning_init: bool) -> list[dict]:
    pl.seed_everything(0, workers=lightning_init)
    dm = DemoDataModule(batch_size=4, samples_per_epoch=8, num_workers=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    if lightning_init:  # what the Trainer adds after seed_everything(workers=True)
        loader.worker_init_fn = partial(pl_worker_init_function, rank=0)
    return list(loader)  # batch 0 comes from worker 0, batch 1 from worker 1


@pytest.mark.parametrize("lightning_init", [False, True])
def test_two_workers_differ_and_are_reproducible(lightning_init: bool) -> None:
    first = _two_worker_batches(lightning_init)
    assert len(first) == 2
    assert not torch.equal(first[0]["hq"], first[1]["hq"])  # not the same crops in every worker
    assert not torch.equal(first[0]["lq"] - first[0]["hq"], first[1]["lq"] - first[1]["hq"])
    second = _two_worker_batches(lightning_init)
    for a, b in zip(first, second):
        assert torch.equal(a["hq"], b["hq"]) and torch.equal(a["lq"], b["lq"])


def test_bad_scene_lists_are_one_line_errors() -> None:
    with pytest.raises(UserError, match=r"unknown val_scenes \['cat'\]; valid scenes: astronaut, chelsea"):
        DemoDataModule(val_scenes=["cat"])
    with pytest.raises(UserError, match="leaves no training scene"):
        DemoDataModule(val_scenes=["astronaut", "chelsea", "coffee", "rocket", "motorcycle"])
    with pytest.raises(UserError, match="leaves no validation scene"):
        DemoDataModule(val_scenes=[])
