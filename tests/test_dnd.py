"""DND: the official file format, the DataModule and the submission export."""

import shutil

import h5py
import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.io
import torch
from jsonargparse import CLI

from datamodules.dnd import DNDDataModule
from datamodules.dnd_format import (
    box_crops,
    find_dnd_images,
    is_dnd_root,
    read_dnd_boxes,
    read_dnd_image,
    read_dnd_sigmas,
    write_dnd_submission,
)
from datamodules.io import read_image
from dnd_files import grid_boxes, write_dnd_tree
from mobile2dslr.checkpoints import load_enhancer
from mobile2dslr.commands.export_dnd import export_dnd, export_submission
from mobile2dslr.errors import DatasetLayoutError, ImageReadError, UserError

POLYU = "data/noisy/PolyU/CroppedImages"
H, W = 96, 80  # not square, so a missing transpose changes the shape


def _boxes_two(rng) -> np.ndarray:
    """20 boxes of 12 rows x 20 columns at random places: rows and columns differ in both size and position."""
    rows = rng.integers(1, H - 12 + 2, size=20)
    cols = rng.integers(1, W - 20 + 2, size=20)
    return np.stack([rows, cols, rows + 11, cols + 19], axis=1).astype(np.float64)


@pytest.fixture(scope="module")
def tree(shared_dir, tmp_path_factory):
    """Two real noisy 96x80 images (float32 and float64), their MATLAB boxes and the DND tree."""
    photo = read_image(shared_dir / POLYU / "Canon5D2_5_160_3200_chair_11_real.JPG")
    images = [photo[:H, :W].copy(), photo[200 : 200 + H, 300 : 300 + W].astype(np.float64)]
    boxes = [grid_boxes(H, W, 16), _boxes_two(np.random.default_rng(0))]
    sigmas = [np.linspace(0.01, 0.2, 20), np.linspace(0.3, 0.5, 20)]
    root = write_dnd_tree(tmp_path_factory.mktemp("dnd") / "DND", images, boxes, sigmas)
    return root, images, boxes, sigmas


def _slice(image, row):
    r1, c1, r2, c2 = (int(v) for v in row)
    return image[r1 - 1 : r2, c1 - 1 : c2]  # MATLAB's image(r1:r2, c1:c2)


def _copy(tree, tmp_path):
    return shutil.copytree(tree[0], tmp_path / "DND")


def test_files_are_matlab_v73_as_the_release(tree):
    root = tree[0]
    raw = (root / "info.mat").read_bytes()[:128]
    assert raw.startswith(b"MATLAB 7.3 MAT-file") and raw[124:] == b"\x00\x02IM"
    with h5py.File(root / "images_srgb" / "0001.mat", "r") as file:
        assert file["InoisySRGB"].shape == (3, W, H)  # column-major: MATLAB's H x W x 3 transposed
    with h5py.File(root / "info.mat", "r") as file:
        assert file["info/boundingboxes"].shape == (1, 2)
        assert file[file["info/boundingboxes"][0][1]].shape == (4, 20)


def test_reader_recovers_images_and_boxes(tree):
    root, images, boxes, sigmas = tree
    assert is_dnd_root(root) and [p.name for p in find_dnd_images(root)] == ["0001.mat", "0002.mat"]
    read = [read_dnd_image(path) for path in find_dnd_images(root)]
    assert read[0].dtype == np.float32 and read[0].shape == (H, W, 3)
    np.testing.assert_array_equal(read[0], images[0])
    np.testing.assert_array_equal(read[1], images[1].astype(np.float32))
    np.testing.assert_array_equal(read_dnd_image(root / "images_srgb" / "0002.mat", (5, 7, 30, 61)), read[1][5:30, 7:61])
    found = read_dnd_boxes(root / "info.mat")
    for image, stored, matlab in zip(read, found, boxes):
        assert stored.dtype == np.int64 and stored.shape == (20, 4)
        np.testing.assert_array_equal(stored, matlab.astype(np.int64) - [1, 1, 0, 0])
        for crop, row in zip(box_crops(image, stored, "x"), matlab):
            np.testing.assert_array_equal(crop, _slice(image, row))
    assert box_crops(read[1], found[1], "x")[0].shape == (12, 20, 3)
    np.testing.assert_allclose(read_dnd_sigmas(root / "info.mat")[1], sigmas[1])


def test_reader_agrees_with_the_kits_own_reading(tree):
    """The kit: ``np.float32(np.array(img['InoisySRGB']).T)``, ``info[bb[0][i]]``, ``Inoisy[r1-1:r2, c1-1:c2]``."""
    root = tree[0]
    with h5py.File(root / "info.mat", "r") as infos:
        info = infos["info"]
        kit_boxes = [np.array(info[info["boundingboxes"][0][i]]).T for i in range(2)]
    ours = read_dnd_boxes(root / "info.mat")
    for i, path in enumerate(find_dnd_images(root)):
        with h5py.File(path, "r") as img:
            inoisy = np.float32(np.array(img["InoisySRGB"]).T)
        for k, crop in enumerate(box_crops(read_dnd_image(path), ours[i], str(path))):
            r1, c1, r2, c2 = kit_boxes[i][k]
            np.testing.assert_array_equal(crop, inoisy[int(r1 - 1) : int(r2), int(c1 - 1) : int(c2), :])


def test_bad_image_files_are_one_line_naming_them(tree, tmp_path):
    good = tree[0] / "images_srgb" / "0001.mat"
    cases = {"missing.mat": None, "text.mat": b"not a mat file", "truncated.mat": good.read_bytes()[:1500]}
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError) as err:
            read_dnd_image(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with h5py.File(tmp_path / "other.mat", "w") as file:
        file["Inoisy"] = np.zeros((3, 8, 8))
        file["InoisyGray"] = np.zeros((8, 8))
    with pytest.raises(ImageReadError, match=r"other.mat: no InoisySRGB variable \(found Inoisy, InoisyGray\)"):
        read_dnd_image(tmp_path / "other.mat")
    with h5py.File(tmp_path / "gray.mat", "w") as file:
        file["InoisySRGB"] = np.zeros((8, 8))
    with pytest.raises(ImageReadError, match=r"gray.mat: InoisySRGB has HDF5 shape \(8, 8\)"):
        read_dnd_image(tmp_path / "gray.mat")


def _crops(rng, images=(1, 2)):
    return {(n, b): rng.random((8 + b, 10, 3)).astype(np.float32) for n in images for b in range(1, 21)}


def test_submission_files_have_the_kits_keys_and_cells(tmp_path):
    crops = _crops(np.random.default_rng(1))
    bundled = write_dnd_submission(tmp_path / "sub", crops)
    assert bundled == tmp_path / "sub" / "bundled"
    box = scipy.io.loadmat(tmp_path / "sub" / "0002_07.mat")
    assert box["Idenoised_crop"].dtype == np.float32
    np.testing.assert_array_equal(box["Idenoised_crop"], crops[(2, 7)])
    assert len(list((tmp_path / "sub").glob("*_*.mat"))) == 40
    for number in (1, 2):
        bundle = scipy.io.loadmat(bundled / f"{number:04d}.mat")
        assert {"Idenoised", "israw", "eval_version"} <= set(bundle)
        cell = bundle["Idenoised"]
        assert cell.dtype == object and cell.shape == (1, 20)
        for b in range(1, 21):
            assert cell[0, b - 1].dtype == np.float32
            np.testing.assert_array_equal(cell[0, b - 1], crops[(number, b)])
        assert not bundle["israw"].item() and str(bundle["eval_version"][0]) == "1.0"
    assert not list(tmp_path.rglob(".*.tmp"))


def test_submission_never_overwrites_unless_asked(tmp_path):
    crops = _crops(np.random.default_rng(2), images=(1,))
    write_dnd_submission(tmp_path, crops)
    with pytest.raises(UserError, match="0001_01.mat: already exists"):
        write_dnd_submission(tmp_path, crops)
    crops[(1, 3)] = np.zeros((4, 4, 3), np.float32)
    write_dnd_submission(tmp_path, crops, overwrite=True)
    assert not scipy.io.loadmat(tmp_path / "bundled" / "0001.mat")["Idenoised"][0, 2].any()
    with pytest.raises(UserError, match="boxes 1..N"):
        write_dnd_submission(tmp_path / "gap", {(1, 1): crops[(1, 1)], (1, 3): crops[(1, 3)]})


def test_export_applies_the_method_to_every_box(tree, tmp_path):
    root, images, boxes, _ = tree
    bundled = export_submission(str(root), str(tmp_path / "out"), lambda x: x * 2)
    for number, (image, rows) in enumerate(zip(images, boxes), start=1):
        cell = scipy.io.loadmat(bundled / f"{number:04d}.mat")["Idenoised"]
        for b, row in enumerate(rows):
            expected = np.clip(_slice(image.astype(np.float32), row) * 2, 0, 1)  # clamped to [0, 1]
            np.testing.assert_array_equal(cell[0, b], expected)
    with pytest.raises(UserError, match="folder is not empty"):
        export_submission(str(root), str(tmp_path / "out"), lambda x: x)
    export_submission(str(root), str(tmp_path / "out"), lambda x: x, overwrite=True)
    box = scipy.io.loadmat(tmp_path / "out" / "0002_05.mat")["Idenoised_crop"]
    np.testing.assert_array_equal(box, _slice(images[1].astype(np.float32), boxes[1][4]))


def test_export_refuses_bad_input_in_one_line(tree, tmp_path):
    with pytest.raises(UserError, match="not a DND folder; expected <root>/images_srgb"):
        export_submission(str(tmp_path), str(tmp_path / "out"), lambda x: x)
    root = _copy(tree, tmp_path)
    (root / "images_srgb" / "0002.mat").write_bytes(b"\0" * 64)
    with pytest.raises(ImageReadError, match="0002.mat: cannot read it as a MATLAB v7.3"):
        export_submission(str(root), str(tmp_path / "out"), lambda x: x)
    with pytest.raises(UserError, match="the enhancer returned shape"):
        export_submission(str(root), str(tmp_path / "out2"), lambda x: x[..., :-1])


def _tiny_checkpoint(path):
    from mobile2dslr.checkpoints import build_phase, save_phase

    model, hparams = build_phase({"class_path": "lightning_modules.DPEDPlus", "init_args": {
        "generator": {"class_path": "lightning_modules.nets.DPEDGenerator", "init_args": {"width": 4, "blocks": 1}},
        "discriminator": {"class_path": "lightning_modules.nets.DPEDDiscriminator", "init_args": {"patch_size": 16}},
        "content_loss": {"class_path": "lightning_modules.losses.PixelContentLoss"},
    }})
    return save_phase(model, hparams, str(path))


def test_export_command_with_a_checkpoint(tree, tmp_path, capsys):
    root, images, boxes, _ = tree
    ckpt = _tiny_checkpoint(tmp_path / "tiny.ckpt")
    assert export_dnd(str(root), str(tmp_path / "out"), ckpt=str(ckpt), device="cpu") == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out" / "bundled") in out and "upload" in out
    assert len(list((tmp_path / "out").glob("*_*.mat"))) == 40
    assert sorted(p.name for p in (tmp_path / "out" / "bundled").iterdir()) == ["0001.mat", "0002.mat"]
    net = load_enhancer(str(ckpt))
    crop = _slice(images[1].astype(np.float32), boxes[1][3])
    with torch.no_grad():
        expected = net(torch.from_numpy(crop).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    written = scipy.io.loadmat(tmp_path / "out" / "0002_04.mat")["Idenoised_crop"]
    np.testing.assert_allclose(written, expected, atol=1e-6)
    assert np.abs(written - crop).mean() > 0.01  # the net changed it
    # The typed command as the CLI runs it; it refuses the now non-empty folder.
    assert CLI(export_dnd, args=[str(root), str(tmp_path / "cli"), "--ckpt", str(ckpt), "--device", "cpu"]) == 0
    with pytest.raises(UserError, match="not empty"):
        CLI(export_dnd, args=[str(root), str(tmp_path / "cli"), "--ckpt", str(ckpt)])


def test_datamodule_official_benchmark_and_training(tree):
    root, images, boxes, _ = tree
    dm = DNDDataModule(str(root), patch_size=16, batch_size=4, samples_per_epoch=8)
    dm.setup("fit")
    items = list(dm.val_dataloader().dataset)
    assert [item["name"] for item in items[:2]] + [items[-1]["name"]] == ["0001_01", "0001_02", "0002_20"]
    assert len(items) == 40 and set(items[0]) == {"lq", "name"}
    for item, row in zip(items[20:], boxes[1]):
        np.testing.assert_array_equal(item["lq"].permute(1, 2, 0).numpy(), _slice(images[1].astype(np.float32), row))
    pl.seed_everything(0, verbose=False)
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (4, 3, 16, 16) and batch["lq"].dtype == torch.float32 and "hq" not in batch
    assert 0.0 <= batch["lq"].min() and batch["lq"].max() <= 1.0
    windows = [np.lib.stride_tricks.sliding_window_view(im.astype(np.float32), (16, 16), axis=(0, 1)) for im in images]
    for patch in batch["lq"].numpy():  # (3, 16, 16): each one is a region of an image, up to a flip/rot90
        variants = [np.rot90(p, k, axes=(1, 2)) for p in (patch, patch[:, :, ::-1]) for k in range(4)]
        assert any((w == v).all(axis=(2, 3, 4)).any() for w in windows for v in variants)
    assert [item["name"] for item in dm.predict_dataloader().dataset][:1] == ["0001_01"]


def test_datamodule_plain_folder_with_a_pattern(shared_dir):
    folder = shared_dir / POLYU
    dm = DNDDataModule(str(folder), pattern="*_REAL.jpg", patch_size=32, batch_size=2, samples_per_epoch=2, val_crop=64)
    dm.setup()
    names = dm.train_names + [name for name, _ in dm.val_items]
    assert len(names) == 10 and all(name.endswith("_real") for name in names)
    assert len(dm.val_items) == 1 and not dm.official
    item = dm.val_dataloader().dataset[0]
    expected = read_image(dm.val_items[0][1])[224:288, 224:288]  # the centre 64x64 of a 512x512 photo
    np.testing.assert_array_equal(item["lq"].permute(1, 2, 0).numpy(), expected)
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, 3, 32, 32) and 0 <= batch["lq"].min() and batch["lq"].max() <= 1
    everything = DNDDataModule(str(folder))
    everything.setup()
    assert len(everything.train_names) + len(everything.val_items) == 20


def test_datamodule_bad_trees(tree, tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"nowhere: dataset folder not found; .*images_srgb.*folder of noisy photos"):
        DNDDataModule(str(tmp_path / "nowhere")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"empty: neither DND files nor noisy photos found; .*images_srgb"):
        DNDDataModule(str(tmp_path / "empty")).setup()
    with pytest.raises(DatasetLayoutError, match=r"noisy photos matching '\*_real\.\*' found"):
        DNDDataModule(str(tmp_path / "empty"), pattern="*_real.*").setup()
    root = _copy(tree, tmp_path)
    (root / "info.mat").unlink()
    with pytest.raises(DatasetLayoutError, match=r"info.mat: not found; the official DND layout is"):
        DNDDataModule(str(root)).setup()
    small = write_dnd_tree(tmp_path / "small", [tree[1][0][:24]], [grid_boxes(H, W, 16)])
    with pytest.raises(DatasetLayoutError, match=r"0001.mat: box \d+ .* lies outside the 80x24 image"):
        DNDDataModule(str(small)).setup()


def test_bad_info_mat_is_one_line_naming_it(tree, tmp_path):
    assert read_dnd_sigmas(write_dnd_tree(tmp_path / "plain", [tree[1][0]], [tree[2][0]]) / "info.mat") is None
    zero_based = tree[2][0] - [1, 1, 0, 0]
    with pytest.raises(DatasetLayoutError, match=r"info.mat: boxes of image 1 are not 1-based inclusive"):
        read_dnd_boxes(write_dnd_tree(tmp_path / "zero", [tree[1][0]], [zero_based]) / "info.mat")
    with h5py.File(tmp_path / "info.mat", "w") as file:
        file.create_group("info")["nlf"] = np.zeros(3)
    with pytest.raises(DatasetLayoutError, match=r"info.mat: no info.boundingboxes cell"):
        read_dnd_boxes(tmp_path / "info.mat")
    with pytest.raises(DatasetLayoutError, match=r"absent.mat: DND info.mat not found"):
        read_dnd_boxes(tmp_path / "absent.mat")


def test_datamodule_corrupt_mat_is_one_line_naming_it(tree, tmp_path):
    root = _copy(tree, tmp_path)
    (root / "images_srgb" / "0002.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    with pytest.raises(ImageReadError) as err:
        DNDDataModule(str(root)).setup()
    assert "0002.mat: cannot read it as a MATLAB v7.3 (HDF5) file" in str(err.value) and "\n" not in str(err.value)
