"""Load any phase's checkpoint and get the network that enhances images from it."""

import importlib
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
from torch import nn

from lightning_modules.nets.pretrained import read_torch_file

from .errors import WeightsError

__all__ = ["checkpoint_class", "load_phase", "load_enhancer"]


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
