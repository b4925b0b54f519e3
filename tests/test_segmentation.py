"""Semantic segmentation: the ADE20K DeepLab model, mask files, colour clusters and regions."""

from __future__ import annotations

import copy
import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from datamodules.io import read_image
from lightning_modules.segmentation import (
    ADE20K_LABELS,
    DEFAULT_ADE20K_GROUPS,
    ColorClusters,
    DeepLabADE20K,
    MaskFiles,
    RegionMap,
    default_segmenter,
    histogram_overlap,
    label_histogram,
)
from mobile2dslr.errors import UserError, WeightsError

SEG = "weights/segmentation"
TORCHSCRIPT = f"{SEG}/deeplabv3_mnv2_ade20k_513_torchscript.pt"
TFLITE = f"{SEG}/lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite"
STREET = "data/dped_fullsize/iphone/test_data/full_size_test_images/16.jpg"
BLUE_SKY = "data/hr/CUrban100/img_047.png"
SKY, ROAD, BUILDING = (ADE20K_LABELS.index(name) for name in ("sky", "road", "building"))


def _tensor(path) -> torch.Tensor:
    return torch.from_numpy(read_image(path)).permute(2, 0, 1)[None]


def _fraction(labels: torch.Tensor, label: int) -> float:
    return (labels == label).float().mean().item()


@pytest.fixture(scope="module")
def street(shared_dir) -> torch.Tensor:
    return _tensor(shared_dir / STREET)


@pytest.fixture(scope="module")
def street_labels(shared_dir, street) -> torch.Tensor:
    return DeepLabADE20K(str(shared_dir / TORCHSCRIPT))(street)


# --- DeepLabADE20K ---------------------------------------------------------------------


def test_deeplab_labels_street_as_in_the_readme_overlay(street, street_labels):
    assert street_labels.shape == (1, 1536, 2048) and street_labels.dtype == torch.long
    labels = street_labels[0]
    top_centre, bottom_centre = labels[:250, 900:1150], labels[-200:, 900:1150]
    assert _fraction(top_centre, SKY) > 0.95
    assert _fraction(bottom_centre, ROAD) > 0.9
    # README: building 44%, sky 30%, road 14%, car 7%.
    assert _fraction(labels, SKY) == pytest.approx(0.30, abs=0.03)
    assert _fraction(labels, ROAD) == pytest.approx(0.14, abs=0.03)
    assert _fraction(labels, BUILDING) == pytest.approx(0.44, abs=0.05)
    # The facades on both sides are building.
    assert _fraction(labels[300:900, :250], BUILDING) > 0.8
    assert _fraction(labels[300:900, -250:], BUILDING) > 0.8


def test_deeplab_default_groups_merge_street_regions(street_labels):
    regions = RegionMap(ADE20K_LABELS, DEFAULT_ADE20K_GROUPS)
    fractions = regions.masks(street_labels).mean(dim=(0, 2, 3))
    share = dict(zip(regions.names, fractions.tolist(), strict=True))
    assert share["sky"] == pytest.approx(0.30, abs=0.03)
    assert share["ground"] == pytest.approx(0.17, abs=0.03)  # road 14% + sidewalk 3%
    assert share["vehicle"] == pytest.approx(0.07, abs=0.02)
    assert share["water"] == share["person"] == 0.0


def test_litert_route_agrees_with_torchscript(shared_dir, street, street_labels):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install '.[litert]')")
    lite = DeepLabADE20K(str(shared_dir / TFLITE), threads=2)
    assert lite.runtime == "litert"
    labels = lite(street)
    # README: LiteRT's int8 activations flip about 2% of pixels against the float TorchScript.
    assert (labels == street_labels).float().mean() > 0.95


def test_deeplab_keeps_the_model_out_of_state_dict(shared_dir):
    holder = nn.Module()
    holder.segmenter = DeepLabADE20K(str(shared_dir / TORCHSCRIPT))
    holder.conv = nn.Conv2d(3, 1, 1)
    assert set(holder.state_dict()) == {"conv.weight", "conv.bias"}
    assert list(holder.segmenter.parameters()) == [] and list(holder.segmenter.children()) == []
    holder.load_state_dict(holder.state_dict())  # strict: nothing missing
    clone = copy.deepcopy(holder.segmenter)  # the model is dropped and reloaded on first use
    assert clone.path == holder.segmenter.path and clone._runner is None


def test_deeplab_bad_files_are_one_line_errors(shared_dir, tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match="nope.pt: segmentation model file not found"):
        DeepLabADE20K(str(missing))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="garbage.pt: cannot load") as error:
        DeepLabADE20K(str(garbage))
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="runtime"):
        DeepLabADE20K(str(tmp_path / "model.onnx"))
    with pytest.raises(UserError, match="long_side"):
        DeepLabADE20K(str(shared_dir / TORCHSCRIPT), long_side=1024)


def test_deeplab_without_litert_says_how_to_install(shared_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    with pytest.raises(UserError, match=r"pip install '\.\[litert\]'"):
        DeepLabADE20K(str(shared_dir / TFLITE))


# --- RegionMap and histograms ----------------------------------------------------------

LABELS = ("other", "sky", "tree", "grass", "road", "car")
GROUPS = {"sky": ["sky"], "green": ["tree", "grass"]}


def test_region_map_merges_labels_into_named_regions():
    regions = RegionMap(LABELS, GROUPS)
    assert regions.names == ("sky", "green", "other") and regions.num_regions == 3
    labels = torch.tensor([[[1, 2, 3], [0, 4, 5]]])
    assert regions(labels).tolist() == [[[0, 1, 1], [2, 2, 2]]]
    masks = regions.masks(labels)
    assert masks.shape == (1, 3, 2, 3)
    assert masks[0, 1].tolist() == [[0, 1, 1], [0, 0, 0]]
    assert masks[0, 2].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_region_map_without_groups_keeps_every_label():
    regions = RegionMap(LABELS)
    assert regions.names == LABELS
    labels = torch.tensor([[[5, 0], [3, 3]]])
    assert torch.equal(regions(labels), labels)


def test_region_masks_at_feature_resolution_are_area_fractions():
    regions = RegionMap(LABELS, GROUPS)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, :2] = 1  # sky: top quarter
    labels[0, 2:, :4] = 2  # green: bottom-left
    labels[1] = torch.randint(0, len(LABELS), (8, 8))
    masks = regions.masks(labels, size=(2, 2))
    assert masks.shape == (2, 3, 2, 2)
    assert masks[0, 0].tolist() == [[0.5, 0.5], [0.0, 0.0]]  # each cell is 4 rows: 2 of sky
    assert masks[0, 1].tolist() == [[0.5, 0.0], [1.0, 0.0]]
    assert torch.allclose(masks.sum(dim=1), torch.ones(2, 2, 2))
    odd = regions.masks(labels, size=(3, 5))  # non-integer factors still sum to 1
    assert torch.allclose(odd.sum(dim=1), torch.ones(2, 3, 5))


def test_region_map_rejects_unknown_and_duplicate_labels():
    with pytest.raises(UserError, match="unknown label 'trees'; valid labels: other, sky, tree") as error:
        RegionMap(LABELS, {"green": ["trees"]})
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="'tree' is already in another group"):
        RegionMap(LABELS, {"green": ["tree"], "plants": ["tree"]})


def test_default_ade20k_groups_are_valid():
    regions = RegionMap(ADE20K_LABELS, DEFAULT_ADE20K_GROUPS)
    assert regions.names == ("sky", "vegetation", "building", "ground", "water", "person", "vehicle", "other")
    named = {name: regions(torch.tensor([[[ADE20K_LABELS.index(name)]]])).item() for name in ADE20K_LABELS}
    assert regions.names[named["palm"]] == "vegetation" and regions.names[named["skyscraper"]] == "building"
    assert regions.names[named["swimming pool"]] == "water" and regions.names[named["pool table"]] == "other"


def test_label_histogram_and_overlap_known_answers():
    labels = torch.tensor([[[0, 0], [1, 2]], [[2, 2], [2, 2]]])
    hist = label_histogram(labels, 3)
    assert hist.tolist() == [[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]
    overlap = histogram_overlap(hist, torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]))
    assert overlap.tolist() == [[1.0, 0.25, 0.5], [0.25, 0.0, 0.5]]
    with pytest.raises(ValueError):
        label_histogram(labels, 2)


# --- ColorClusters ---------------------------------------------------------------------


def _sky_over_grass() -> torch.Tensor:
    image = torch.empty(1, 3, 96, 128)
    image[:, :, :48] = torch.tensor([0.45, 0.65, 0.9]).view(3, 1, 1)
    image[:, :, 48:] = torch.tensor([0.2, 0.5, 0.15]).view(3, 1, 1)
    return image


def test_color_clusters_share_one_label_space(shared_dir):
    clusters = ColorClusters()
    assert clusters.default_groups is None and "sky-blue" in clusters.label_names
    synthetic = clusters(_sky_over_grass())[0]
    sky, grass = synthetic[:48].unique(), synthetic[48:].unique()
    assert sky.tolist() == [clusters.label_names.index("sky-blue")]
    assert grass.tolist() == [clusters.label_names.index("green")]
    photo = _tensor(shared_dir / BLUE_SKY)
    labels = clusters(photo)[0]
    assert labels.shape == photo.shape[-2:]
    height, width = labels.shape
    blue_patch = labels[int(0.2 * height) : int(0.35 * height), int(0.62 * width) : int(0.75 * width)]
    assert _fraction(blue_patch, sky.item()) > 0.8
    assert torch.equal(clusters(photo)[0], labels)  # deterministic


def test_color_clusters_without_superpixels_and_custom_prototypes():
    clusters = ColorClusters(prototypes={"blue": (60, 0, -40), "green": (50, -40, 40)}, superpixels=0)
    assert clusters.label_names == ("blue", "green")
    assert clusters(_sky_over_grass())[0, ::47, 0].tolist() == [0, 0, 1]
    with pytest.raises(UserError):
        ColorClusters(prototypes={"blue": (60, 0)})


def test_default_segmenter_warns_how_to_pass_the_model(caplog):
    with caplog.at_level(logging.WARNING):
        segmenter = default_segmenter()
    assert isinstance(segmenter, ColorClusters)
    assert "lightning_modules.segmentation.DeepLabADE20K" in caplog.text


def test_segmenter_is_frozen():
    clusters = ColorClusters(superpixels=0)
    clusters.train()
    assert not clusters.training
    image = _sky_over_grass().requires_grad_()
    assert not clusters(image).requires_grad
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        clusters(torch.rand(3, 8, 8))


# --- MaskFiles -------------------------------------------------------------------------


def _write_mask(path, labels: np.ndarray) -> None:
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)


def test_mask_files_read_label_index_pngs(tmp_path):
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[:3], mask[3:, :4], mask[3:, 4:] = SKY, ROAD, BUILDING
    _write_mask(tmp_path / "a.png", mask)
    _write_mask(tmp_path / "b.png", mask[::-1])
    _write_mask(tmp_path / "c.png", mask.repeat(2, 0).repeat(2, 1))  # twice the size
    segmenter = MaskFiles(str(tmp_path))
    labels = segmenter(torch.rand(3, 3, 6, 8), names=["photos/a.jpg", "b.jpg", "c.tif"])
    assert labels[0].numpy().tolist() == mask.tolist()
    assert labels[1].numpy().tolist() == mask[::-1].tolist()
    assert labels[2].numpy().tolist() == mask.tolist()  # resized back (nearest)


def test_mask_files_errors_name_the_file(tmp_path):
    segmenter = MaskFiles(str(tmp_path), suffix="_seg.png")
    with pytest.raises(UserError, match=r"x_seg\.png: mask file not found"):
        segmenter(torch.rand(1, 3, 4, 4), names=["x.jpg"])
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb_seg.png")
    with pytest.raises(UserError, match=r"rgb_seg\.png: mask is a RGB image"):
        segmenter(torch.rand(1, 3, 4, 4), names=["rgb.jpg"])
    _write_mask(tmp_path / "wide_seg.png", np.zeros((4, 8)))
    with pytest.raises(UserError, match=r"wide_seg\.png: mask is 8x4, its image 4x4"):
        segmenter(torch.rand(1, 3, 4, 4), names=["wide.jpg"])
    _write_mask(tmp_path / "big_seg.png", np.full((4, 4), 200))
    with pytest.raises(UserError, match=r"big_seg\.png: mask has label 200"):
        segmenter(torch.rand(1, 3, 4, 4), names=["big.jpg"])
    (tmp_path / "bad_seg.png").write_bytes(b"oops")
    with pytest.raises(UserError, match=r"bad_seg\.png: cannot read mask"):
        segmenter(torch.rand(1, 3, 4, 4), names=["bad.jpg"])
