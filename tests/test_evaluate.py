"""LPIPS (known answers, the reference's port) and `mobile2dslr evaluate` on real LOL and DPED pairs."""

import csv
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from datamodules import PairedDataModule, read_image, write_image
from lightning_modules.losses.lpips import LPIPS, convert_lpips_heads, lpips_from_features
from lightning_modules.nets.vgg16 import IMAGENET_MEAN, IMAGENET_STD, imagenet_vgg16_state_dict
from mobile2dslr import cli
from mobile2dslr.commands.evaluate import baseline_methods, evaluate, evaluate_methods
from mobile2dslr.commands.import_dped import import_dped
from mobile2dslr.errors import DatasetLayoutError, UserError, WeightsError

LOL_NAMES = ("5", "73", "126")


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path)).permute(2, 0, 1)[None]


def _csv(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    with open(path, newline="") as handle:
        return {(row["method"], row["image"]): {k: float(row[k]) for k in ("psnr", "ssim", "lpips")} for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def metric() -> LPIPS:
    lpips = LPIPS()
    assert lpips.weights == "imagenet" and lpips.vgg.weights == "imagenet"
    return lpips


@pytest.fixture(scope="module")
def dped_root(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dped"


@pytest.fixture(scope="module")
def lol(shared_dir: Path, tmp_path_factory) -> Path:
    """3 real LOL pairs, 96x128 px crops (evaluation cost grows with pixels)."""
    root = tmp_path_factory.mktemp("lol") / "our485"
    for name in LOL_NAMES:
        for side in ("low", "high"):
            image = read_image(shared_dir / "data" / "lowlight" / "our485" / side / f"{name}.png")
            write_image(root / side / f"{name}.png", image[152:248, 236:364])
    return root


@pytest.fixture(scope="module")
def ckpt(shared_dir: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("evaluate") / "iphone.ckpt"
    import_dped(str(shared_dir / "weights" / "dped_official" / "npz" / "iphone_orig.npz"), str(path))
    return path


# --- LPIPS --------------------------------------------------------------------------------


def test_lpips_scaling_layer_is_torchvision_normalisation() -> None:
    x = torch.rand(2, 3, 8, 8)
    shift, scale = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close((2 * x - 1 - shift) / scale, (x - mean) / std, atol=1e-6, rtol=0)


def test_lpips_one_layer_by_hand() -> None:
    a = torch.tensor([[[[3.0, 0.0]], [[4.0, 0.0]], [[0.0, 2.0]]]])  # (1, 3, 1, 2): pixels (3,4,0) and (0,0,2)
    b = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]], [[5.0, 0.0]]]])  # pixels (0,0,5) and (1,0,0)
    head = torch.tensor([1.0, 2.0, 0.5])
    # unit vectors: a (.6,.8,0), (0,0,1); b (0,0,1), (1,0,0)
    left = 1.0 * 0.6**2 + 2.0 * 0.8**2 + 0.5 * 1.0**2
    right = 1.0 * 1.0 + 2.0 * 0.0 + 0.5 * 1.0
    expected = (left + right) / 2  # spatial mean over the 2 pixels
    torch.testing.assert_close(lpips_from_features([a], [b], [head]), torch.tensor([expected]))
    with pytest.raises(ValueError, match="layer 0"):
        lpips_from_features([a], [b], [torch.ones(4)])


def test_lpips_zero_for_identical_symmetric_and_monotone_in_noise(metric: LPIPS, dped_root: Path) -> None:
    photo = _tensor(dped_root / "iphone" / "test_data" / "patches" / "canon" / "0.png")[..., :64, :64]
    other = _tensor(dped_root / "iphone" / "test_data" / "patches" / "iphone" / "0.png")[..., :64, :64]
    noise = torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))
    noisy = [(photo + sigma * noise).clamp(0, 1) for sigma in (0.01, 0.05, 0.2)]
    with torch.no_grad():  # one batch: rows are scored independently
        scores = metric(torch.cat([photo, photo, other, *noisy]), torch.cat([photo, other, photo, photo, photo, photo])).tolist()
        alone = metric(photo, other).item()
    assert scores[0] == 0
    assert scores[1] == pytest.approx(scores[2], abs=1e-6) and scores[1] == pytest.approx(alone, abs=1e-5)
    assert 0 < scores[3] < scores[4] < scores[5] < 1.5, scores
    with pytest.raises(ValueError, match="at least 16x16"):
        metric(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_lpips_matches_the_reference_port_and_its_own_heads(metric: LPIPS, dped_root: Path) -> None:
    """torchmetrics' port of richzhang/PerceptualSimilarity, with the v0.1 heads it ships (an
    independent copy of ours) and the same VGG-16 conv weights, gives the same distances.

    No published LPIPS value could be checked offline: the reference's example images
    (imgs/ex_ref.png, ex_p0.png) ship in no installed package.
    """
    from torchmetrics.functional.image.lpips import _LPIPS

    reference = _LPIPS(pretrained=True, net="vgg", pnet_rand=True).eval()
    vgg = imagenet_vgg16_state_dict()
    reference.net.load_state_dict({k: vgg[k.split(".", 1)[1]] for k in reference.net.state_dict()})
    for k, head in enumerate(metric.heads):
        torch.testing.assert_close(getattr(reference, f"lin{k}").model[-1].weight.flatten(), head, atol=1e-7, rtol=0)
    patches = dped_root / "iphone" / "test_data" / "patches"
    phone, canon = _tensor(patches / "iphone" / "1.png"), _tensor(patches / "canon" / "1.png")
    noisy = (canon + 0.05 * torch.randn(canon.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    with torch.no_grad():
        ours = metric(torch.cat([phone, noisy]), torch.cat([canon, canon]))
        theirs = reference(torch.cat([phone, noisy]), torch.cat([canon, canon]), normalize=True).flatten()
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_lpips_heads_from_a_bad_pickle_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.ckpt").write_bytes(pickle.dumps({"NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 3, 1), np.float32)}}}))
    with pytest.raises(WeightsError, match="NetLinLayer_0/Conv_0/kernel of shape"):
        convert_lpips_heads(tmp_path / "bad.ckpt")
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"x": Path("/")}))
    with pytest.raises(WeightsError, match="not a readable"):
        convert_lpips_heads(tmp_path / "evil.ckpt")


# --- all_pairs ----------------------------------------------------------------------------


def test_all_pairs_reads_every_layout(dped_root: Path, lol: Path) -> None:
    dped = PairedDataModule(str(dped_root)).all_pairs()
    assert [p.name for p in dped] == [str(i) for i in range(8)]
    assert all(p.lq.parent.name == "iphone" and p.lq.parent.parent.name == "patches" and p.hq.name == p.lq.name for p in dped)
    folders = PairedDataModule(str(lol), layout="folders", lq_dir="low", hq_dir="high").all_pairs()
    assert [p.name for p in folders] == list(LOL_NAMES[:1]) + sorted(LOL_NAMES[1:], key=int)  # natural order
    with pytest.raises(DatasetLayoutError, match=r"expected <root>/\{lq,hq\}"):
        PairedDataModule(str(lol), layout="folders").all_pairs()


# --- evaluate -----------------------------------------------------------------------------


def test_evaluate_lol_scores_baselines_and_writes_the_report(lol: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    status = evaluate(str(lol), str(out), layout="folders", lq_dir="low", hq_dir="high", crop=96, device="cpu")
    assert status == 0
    scores = _csv(out / "metrics.csv")
    methods = ["input", "he", "gamma", "he+gamma"]
    assert {key for key in scores} == {(m, n) for m in methods for n in LOL_NAMES}
    for name in LOL_NAMES:
        lq, hq = _tensor(lol / "low" / f"{name}.png"), _tensor(lol / "high" / f"{name}.png")
        assert scores["input", name]["psnr"] == pytest.approx(float(peak_signal_noise_ratio(lq, hq, data_range=1.0)), abs=1e-4)
        assert scores["he", name]["psnr"] > scores["input", name]["psnr"] + 3  # LOL photos are very dark
        assert scores["input", name]["lpips"] > 0.05 and 0 < scores["input", name]["ssim"] < 1
    for file in ("report.md", "report.html", "bar_chart.png", "means.csv"):
        assert (out / file).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert all(f"| {m} |" in report for m in methods) and "**" in report
    assert read_image(out / "side_by_side" / "5.png").shape == (96, 96 * 5, 3)  # input, 3 baselines, target
    printed = capsys.readouterr().out
    assert all(f"| {m} |" in printed for m in methods)
    assert sorted(p.name for p in lol.rglob("*") if p.is_file()) == sorted([f"{n}.png" for n in LOL_NAMES] * 2)  # data untouched


def test_a_method_returning_the_target_scores_perfectly(lol: Path, tmp_path: Path, metric: LPIPS) -> None:
    pairs = PairedDataModule(str(lol), layout="folders", lq_dir="low", hq_dir="high").all_pairs()
    targets = {float(_tensor(p.lq).sum()): _tensor(p.hq) for p in pairs}
    methods = {"input": baseline_methods()["input"], "oracle": lambda x: targets[float(x.sum())]}
    result = evaluate_methods(pairs, methods, str(tmp_path / "out"), crop=64, metric=metric, progress=False)
    assert math.isinf(result.means["oracle"]["psnr"]) and result.means["oracle"]["ssim"] == pytest.approx(1, abs=1e-6)
    assert result.means["oracle"]["lpips"] < 1e-6 < result.means["input"]["lpips"]
    assert "| oracle | **inf** |" in (tmp_path / "out" / "report.md").read_text()


def test_evaluate_dped_patches_with_a_checkpoint(dped_root: Path, ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "dped"
    assert evaluate(str(dped_root), str(out), ckpt=[f"official={ckpt}", str(ckpt)], max_images=2, device="cpu") == 0
    scores = _csv(out / "metrics.csv")
    assert {m for m, _ in scores} == {"input", "he", "gamma", "he+gamma", "official", "iphone"}
    assert {n for _, n in scores} == {"0", "1"}
    assert all(math.isfinite(v) for row in scores.values() for v in row.values())
    assert scores["official", "0"] == pytest.approx(scores["iphone", "0"])  # the same checkpoint twice
    assert scores["official", "0"]["psnr"] != pytest.approx(scores["input", "0"]["psnr"], abs=0.1)
    assert "| official |" in (out / "report.md").read_text()


def test_a_corrupt_image_is_reported_and_the_others_scored(lol: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    for file in lol.rglob("*.png"):
        target = data / file.relative_to(lol)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    (data / "low" / "73.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    status = evaluate(str(data), str(tmp_path / "out"), layout="folders", lq_dir="low", hq_dir="high", device="cpu")
    assert status == 1
    err = capsys.readouterr().err
    assert "73.png" in err and "Traceback" not in err
    assert {name for _, name in _csv(tmp_path / "out" / "metrics.csv")} == {"5", "126"}
    assert "Skipped (1)" in (tmp_path / "out" / "report.md").read_text()


def test_user_errors_are_one_line(lol: Path, ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"folders layout not found under .*empty: expected <root>/\{low,high\}"):
        evaluate(str(tmp_path / "empty"), str(tmp_path / "out"), layout="folders", lq_dir="low", hq_dir="high")
    with pytest.raises(UserError, match="inside the dataset"):
        evaluate(str(lol), str(lol), layout="folders", lq_dir="low", hq_dir="high")
    with pytest.raises(UserError, match="inside the dataset"):
        evaluate(str(lol), str(lol / "low" / "report"), layout="folders", lq_dir="low", hq_dir="high")
    (tmp_path / "notes.ckpt").write_text("hello")
    with pytest.raises(WeightsError, match="notes.ckpt: not a readable torch weights file"):
        evaluate(str(lol), str(tmp_path / "out"), ckpt=[str(tmp_path / "notes.ckpt")], layout="folders", lq_dir="low", hq_dir="high")
    with pytest.raises(UserError, match="checkpoint not found"):
        evaluate(str(lol), str(tmp_path / "out"), ckpt=["x=missing.ckpt"], layout="folders", lq_dir="low", hq_dir="high")
    with pytest.raises(UserError, match="'gamma' is taken"):
        evaluate(str(lol), str(tmp_path / "out"), ckpt=[f"gamma={ckpt}"], layout="folders", lq_dir="low", hq_dir="high")
    # Through the console script: one line, exit status 2.
    monkeypatch.setitem(cli.COMMANDS, "evaluate", "mobile2dslr.commands.evaluate:evaluate")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", str(tmp_path / "none"), str(tmp_path / "out"), "--ckpt", str(ckpt)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "dataset folder not found" in err and len(err.strip().splitlines()) == 1
