"""Load any phase's checkpoint and get the network that enhances images from it."""

import importlib
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.nets.pretrained import read_torch_file

from .errors import WeightsError

__all__ = ["build_phase", "checkpoint_class", "load_phase", "load_enhancer", "save_phase"]


def checkpoint_class(path: str) -> type:
    """The LightningModule class a checkpoint records (``_class_path``), imported."""
    file = Path(path)
    checkpoint = read_torch_file(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    class_path = (hparams or {}).get("_class_path")
    if not class_path or "state_dict" not in checkpoint:
        raise WeightsError(
            f"{file}: not a mobile2dslr phase checkpoint (no model class recorded); "
            "use a checkpoint written by `mobile2dslr fit` or `mobile2dslr import-dped`"
        )
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise WeightsError(f"{file}: its model class {class_path} does not exist in this version") from None


def load_phase(path: str, cls: Optional[type] = None) -> pl.LightningModule:
    """Rebuild the LightningModule a checkpoint was written by, on the CPU.

    Checkpoints made by ``mobile2dslr fit`` or ``import-dped`` record their model class
    and its config (``_class_path``), so no config file is needed.

    Raises:
        WeightsError: missing, unreadable, or not a mobile2dslr checkpoint (one line).
    """
    cls = cls or checkpoint_class(path)
    try:
        return cls.load_from_checkpoint(path, map_location="cpu")
    except (RuntimeError, KeyError, TypeError) as err:
        raise WeightsError(f"{path}: cannot rebuild {cls.__name__} from it ({str(err).splitlines()[0]})") from None


def load_enhancer(path: str) -> nn.Module:
    """The image-to-image network of a checkpoint (``LightningModule.enhancer()``), in eval mode.

    Raises:
        WeightsError: the checkpoint's phase does not enhance images (e.g. a recommender).
    """
    cls = checkpoint_class(path)
    if not hasattr(cls, "enhancer"):
        raise WeightsError(
            f"{path}: a {cls.__name__} checkpoint does not enhance images; "
            "pass a phase checkpoint that does (e.g. MPSE phase 1, DPEDPlus)"
        )
    return load_phase(path, cls).enhancer().eval()


def build_phase(model_config: dict, seed: int = 0) -> tuple[pl.LightningModule, dict]:
    """Build a LightningModule from a config's ``model`` section (``class_path``, ``init_args``).

    Returns:
        The module (seeded, so its fresh weights are reproducible) and the hyperparameters
        that let :func:`load_phase` rebuild it, as LightningCLI records them.
    """
    from pytorch_lightning.cli import instantiate_module

    module_name, _, class_name = model_config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    hparams = {"_class_path": model_config["class_path"], **model_config.get("init_args", {})}
    pl.seed_everything(seed, verbose=False)
    return instantiate_module(cls, hparams), {**hparams, "_instantiator": "pytorch_lightning.cli.instantiate_module"}


def save_phase(module: pl.LightningModule, hparams: dict, path: str, **extra) -> Path:
    """Write ``module`` as a phase checkpoint that ``enhance``/``evaluate``/``load_phase`` accept (atomically)."""
    out = Path(path)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": pl.__version__,
                  "epoch": 0, "global_step": 0, "iteration": 0, **extra}
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    torch.save(checkpoint, temp)
    temp.replace(out)
    return out
