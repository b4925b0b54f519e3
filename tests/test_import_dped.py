"""Official DPED weights: exact import, clear errors, and a checkpoint every command accepts."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio

from datamodules import read_image
from lightning_modules import DPEDPlus
from lightning_modules.nets import DPEDGenerator
from mobile2dslr.checkpoints import load_enhancer
from mobile2dslr.cli import resolve_config_paths, run_lightning
from mobile2dslr.commands.import_dped import import_dped, read_dped_variables
from mobile2dslr.errors import UserError, WeightsError


@pytest.fixture(scope="module")
def official(shared_dir):
    return shared_dir / "weights" / "dped_official"


@pytest.fixture(scope="module")
def iphone_ckpt(official, tmp_path_factory):
    path = tmp_path_factory.mktemp("dped") / "iphone.ckpt"
    import_dped(str(official / "npz" / "iphone_orig.npz"), str(path), phone="iphone")
    return path


def patch(shared_dir, side, i):
    return shared_dir / "data" / "dped" / "iphone" / "test_data" / "patches" / side / f"{i}.png"


def run(net, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("reference", ["iphone_f32input", "iphone"])
def test_imported_iphone_model_reproduces_the_official_outputs(iphone_ckpt, official, shared_dir, reference):
    net = load_enhancer(str(iphone_ckpt))
    assert isinstance(net, DPEDGenerator) and not net.training
    worst = 0.0
    for i in range(8):
        pixels = np.asarray(Image.open(patch(shared_dir, "iphone", i)).convert("RGB"))
        if reference == "iphone":  # the official test_model.py: np.float16(img) / 255
            image = (pixels.astype(np.float16) / np.float16(255)).astype(np.float32)
        else:
            image = read_image(patch(shared_dir, "iphone", i))
        expected = np.load(official / "reference_outputs" / reference / f"{i}.npy")
        worst = max(worst, float(np.abs(run(net, image) - expected).max()))
    assert worst < 1e-4, worst


def test_imported_model_raises_mean_psnr_over_the_test_patches(iphone_ckpt, shared_dir):
    net = load_enhancer(str(iphone_ckpt))
    psnr = lambda a, b: float(peak_signal_noise_ratio(torch.from_numpy(a), torch.from_numpy(b), data_range=1.0))  # noqa: E731
    before, after = [], []
    for i in range(8):
        phone, canon = read_image(patch(shared_dir, "iphone", i)), read_image(patch(shared_dir, "canon", i))
        before.append(psnr(phone, canon))
        after.append(psnr(np.clip(run(net, phone), 0, 1), canon))
    assert np.mean(after) > np.mean(before)
    assert sum(a < b for a, b in zip(after, before)) >= 1  # not every patch gets better (5 of 8 do not)


def test_npz_variable_problems_are_one_clear_line(official, tmp_path):
    with np.load(official / "npz" / "iphone_orig.npz") as archive:
        variables = dict(archive)
    missing = {k: v for k, v in variables.items() if k != "generator/W5"}
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(WeightsError, match=r"missing.npz: missing variable generator/W5"):
        read_dped_variables(str(tmp_path / "missing.npz"))
    wrong = dict(variables, **{"generator/W2": np.zeros((3, 3, 64, 32), np.float32)})
    np.savez(tmp_path / "wrong.npz", **wrong)
    with pytest.raises(WeightsError, match=r"generator/W2 has shape \(3, 3, 64, 32\), DPED's generator needs \(3, 3, 64, 64\)"):
        read_dped_variables(str(tmp_path / "wrong.npz"))
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(WeightsError, match="text.npz: not a readable .npz archive"):
        read_dped_variables(str(tmp_path / "text.npz"))
    with pytest.raises(WeightsError, match=r"nowhere/iphone_orig: no TensorFlow checkpoint here"):
        read_dped_variables(str(tmp_path / "nowhere" / "iphone_orig"))


def test_tensorflow_route_without_tensorflow_says_how_to_get_it(official, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorflow(name, *args, **kwargs):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("No module named 'tensorflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorflow)
    with pytest.raises(UserError, match=r"needs TensorFlow: pip install '\.\[tf\]'"):
        read_dped_variables(str(official / "models_orig" / "iphone_orig"))


def test_never_overwrites_an_existing_checkpoint(iphone_ckpt, official):
    with pytest.raises(UserError, match="already exists"):
        import_dped(str(official / "npz" / "sony_orig.npz"), str(iphone_ckpt))


def test_checkpoint_works_with_test_and_fine_tuning(iphone_ckpt, shared_dir, tmp_path):
    dped = ["--data", "configs/data/dped.yaml", "--data.root", str(shared_dir / "data" / "dped"), "--data.num_workers", "0"]
    common = ["--config", "configs/mpse/dped_official.yaml", *dped, "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    metrics = run_lightning(resolve_config_paths(["test", *common, "--ckpt_path", str(iphone_ckpt)])).trainer.callback_metrics
    assert metrics["test/psnr"] > metrics["test/psnr_input"]

    # Fine-tuning starts from the imported generator.
    model = DPEDPlus(generator=DPEDGenerator(norm="instance"), init_from=str(iphone_ckpt))
    reference = load_enhancer(str(iphone_ckpt))
    assert all(torch.equal(a, b) for a, b in zip(model.generator.state_dict().values(), reference.state_dict().values()))
    cli = run_lightning(resolve_config_paths(["fit", *common, "--model.init_from", str(iphone_ckpt),
                                              "--trainer.max_steps", "2", "--data.batch_size", "2"]))
    fine_tuned = next(tmp_path.rglob("last.ckpt"))
    assert "init_from" not in cli.model.hparams  # the result does not depend on the start file
    moved = iphone_ckpt.rename(iphone_ckpt.with_suffix(".moved"))
    try:
        assert isinstance(load_enhancer(str(fine_tuned)), DPEDGenerator)
    finally:
        moved.rename(iphone_ckpt)
    with pytest.raises(WeightsError, match="does not fit this generator's config"):
        DPEDPlus(generator=DPEDGenerator(width=32, norm="instance"), init_from=str(iphone_ckpt))


@pytest.mark.slow
def test_tensorflow_checkpoint_imports_the_same_weights(official, tmp_path):
    pytest.importorskip("tensorflow")
    from_tf = read_dped_variables(str(official / "models_orig" / "iphone_orig"))
    with np.load(official / "npz" / "iphone_orig.npz") as archive:
        for name, value in archive.items():
            assert np.array_equal(from_tf[name], value), name
