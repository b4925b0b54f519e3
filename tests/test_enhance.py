"""`mobile2dslr enhance`: formats, EXIF, bad files, resume, never over an input, precision."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio

from datamodules import read_image, write_image
from datamodules.io import stored_bit_depth
from mobile2dslr import REPO_ROOT
from mobile2dslr.checkpoints import load_enhancer
from mobile2dslr.cli import main
from mobile2dslr.commands.enhance import enhance, plan_outputs
from mobile2dslr.commands.import_dped import import_dped
from mobile2dslr.errors import UserError, WeightsError
from mobile2dslr.tiling import TiledEnhancer


@pytest.fixture(scope="module")
def ckpt(shared_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("enhance") / "iphone.ckpt"
    import_dped(str(shared_dir / "weights" / "dped_official" / "npz" / "iphone_orig.npz"), str(path))
    return path


@pytest.fixture()
def photos(tmp_path, shared_dir):
    """A folder of small real photos in many formats, and one corrupt file."""
    folder = tmp_path / "in"
    crop = read_image(shared_dir / "data" / "lowlight" / "our485" / "low" / "5.png")[:64, :96]
    write_image(folder / "eight.png", crop)
    write_image(folder / "sixteen.png", crop, bit_depth=16)
    write_image(folder / "sub" / "photo.JPG", crop)
    Image.fromarray((crop[..., 0] * 255).astype(np.uint8), "L").save(folder / "gray.png")
    rgba = np.dstack([(crop * 255).astype(np.uint8), np.full(crop.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray((crop * 255).astype(np.uint8)).save(folder / "rotated.jpg", exif=exif.tobytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return folder


def test_folder_run_keeps_names_formats_depth_and_orientation(ckpt, photos, tmp_path, capsys):
    out = tmp_path / "out"
    status = enhance(str(photos), str(out), ckpt=str(ckpt), precision="fp32")
    assert status == 1  # one file failed
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "Traceback" not in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["alpha.png", "eight.png", "gray.png", "rotated.jpg", "sixteen.png", "sub/photo.JPG"]
    assert stored_bit_depth(out / "sixteen.png") == 16 and stored_bit_depth(out / "eight.png") == 8
    assert Image.open(out / "sub" / "photo.JPG").format == "JPEG"
    assert read_image(out / "rotated.jpg").shape == (96, 64, 3)  # upright: width and height swapped
    # The enhanced photo differs from the input and is brighter (DPED brightens dark phone shots).
    assert read_image(out / "eight.png").mean() > read_image(photos / "eight.png").mean() + 0.05


def test_rerun_skips_what_is_done_and_resumes_the_rest(ckpt, photos, tmp_path, capsys):
    out = tmp_path / "out"
    (photos / "broken.jpg").unlink()
    assert enhance(str(photos), str(out), ckpt=str(ckpt)) == 0
    (out / "eight.png").unlink()  # as if the run had been killed before this one
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    capsys.readouterr()
    assert enhance(str(photos), str(out), ckpt=str(ckpt)) == 0
    assert "enhancing 1 image(s)" in capsys.readouterr().out and (out / "eight.png").is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporary files


def test_never_writes_over_an_input(photos, tmp_path):
    with pytest.raises(UserError, match="would replace the input"):
        plan_outputs(photos, photos)
    with pytest.raises(UserError, match="would replace the input"):
        plan_outputs(photos / "eight.png", photos / "eight.png")
    nested = photos / "enhanced"
    write_image(nested / "eight.png", np.zeros((8, 8, 3)))  # an earlier run's output inside the input
    assert all("enhanced" not in src.parts for src, _ in plan_outputs(photos, nested))
    with pytest.raises(UserError, match="no such file or folder"):
        plan_outputs(tmp_path / "missing", tmp_path / "out")


def test_bad_checkpoints_are_one_line(tmp_path):
    (tmp_path / "notes.ckpt").write_text("hello")
    with pytest.raises(WeightsError, match="notes.ckpt: not a readable torch weights file"):
        load_enhancer(str(tmp_path / "notes.ckpt"))
    with pytest.raises(WeightsError, match="none.ckpt: file not found"):
        load_enhancer(str(tmp_path / "none.ckpt"))
    from pytorch_lightning.demos.boring_classes import BoringModel

    other = {"state_dict": BoringModel().state_dict(), "pytorch-lightning_version": "2.6.0",
             "hyper_parameters": {"_class_path": "pytorch_lightning.demos.boring_classes.BoringModel"}}
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(WeightsError, match="a BoringModel checkpoint does not enhance images"):
        load_enhancer(str(tmp_path / "other.ckpt"))


def test_bf16_default_is_within_0_05_db_of_fp32_on_the_mean(ckpt, shared_dir):
    """bf16 moves single 100x100 patches by up to ~0.1 dB, the 8-patch mean PSNR by < 0.05 dB."""
    net = load_enhancer(str(ckpt))
    patches = shared_dir / "data" / "dped" / "iphone" / "test_data" / "patches"
    gaps = []
    for i in range(8):
        phone = torch.from_numpy(read_image(patches / "iphone" / f"{i}.png")).permute(2, 0, 1)[None]
        canon = torch.from_numpy(read_image(patches / "canon" / f"{i}.png")).permute(2, 0, 1)[None]
        fp32 = TiledEnhancer(net)(phone).clamp(0, 1)
        bf16 = TiledEnhancer(net, autocast_dtype=torch.bfloat16)(phone).clamp(0, 1)
        assert 0 < (bf16 - fp32).abs().max() < 0.03  # really bf16, and close
        gaps.append(float(peak_signal_noise_ratio(bf16, canon, data_range=1.0) - peak_signal_noise_ratio(fp32, canon, data_range=1.0)))
    assert abs(np.mean(gaps)) < 0.05 and max(map(abs, gaps)) < 0.15, gaps


def test_full_size_photo_crop_tiled_with_whole_image_instance_norm_statistics(ckpt, shared_dir):
    photo = shared_dir / "data" / "dped_fullsize" / "iphone" / "test_data" / "full_size_test_images" / "16.jpg"
    image = torch.from_numpy(read_image(photo)[600:856, 800:1120]).permute(2, 0, 1)[None]  # 256x320
    net = load_enhancer(str(ckpt))
    untiled = TiledEnhancer(net, tile=None)(image)
    tiled = TiledEnhancer(net, tile=128, max_untiled_pixels=0)(image)
    assert (tiled - untiled).abs().max() < 1e-4


def test_cli_exit_status_and_help(ckpt, photos, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mobile2dslr", "enhance", str(photos), str(tmp_path / "out"), "--ckpt", str(ckpt)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 1 and "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(SystemExit) as exit_info:
        main(["enhance", str(photos), str(photos), "--ckpt", str(ckpt)])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_full_size_photos_enhance_end_to_end(ckpt, shared_dir, tmp_path):
    folder = shared_dir / "data" / "dped_fullsize" / "iphone" / "test_data" / "full_size_test_images"
    assert enhance(str(folder), str(tmp_path), ckpt=str(ckpt)) == 0
    for name in ("7.jpg", "12.jpg", "16.jpg"):
        assert read_image(tmp_path / name).shape == (1536, 2048, 3)
