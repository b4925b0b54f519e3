"""``mobile2dslr import-dped``: the official DPED generators as phase-1 checkpoints."""

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml

from .. import REPO_ROOT
from ..checkpoints import build_phase, save_phase
from ..errors import UserError, WeightsError

__all__ = ["import_dped", "read_dped_variables", "dped_state_dict", "OFFICIAL_CONFIG"]

#: The config whose model section builds the official generator (norm: instance, ReLU).
OFFICIAL_CONFIG = REPO_ROOT / "configs" / "mpse" / "dped_official.yaml"
_WIDTH, _BLOCKS = 64, 4


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """The 40 TF variables of DPED's ``models.resnet`` and their shapes (HWIO kernels)."""
    shapes = {"generator/W1": (9, 9, 3, _WIDTH), "generator/W12": (9, 9, _WIDTH, 3), "generator/b12": (3,)}
    shapes["generator/b1"] = (_WIDTH,)
    for i in range(2, 12):
        shapes[f"generator/W{i}"] = (3, 3, _WIDTH, _WIDTH)
        shapes[f"generator/b{i}"] = (_WIDTH,)
    for i in range(2 * 2 * _BLOCKS):  # one shift and one scale per instance norm, in creation order
        shapes["generator/Variable" + (f"_{i}" if i else "")] = (_WIDTH,)
    return shapes


def read_dped_variables(source: str) -> dict[str, np.ndarray]:
    """Read the generator variables from a TF checkpoint prefix or an ``.npz`` export.

    Raises:
        UserError: TensorFlow is needed but not installed.
        WeightsError: unreadable file, missing variable or wrong shape (one line each).
    """
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise WeightsError(f"{path}: file not found")
        try:
            with np.load(path, allow_pickle=False) as archive:
                variables = {name: archive[name] for name in archive.files}
        except Exception as err:
            raise WeightsError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})") from None
    else:
        if not Path(f"{source}.index").is_file():
            raise WeightsError(
                f"{source}: no TensorFlow checkpoint here (expected {source}.index and {source}.data-00000-of-00001, "
                "or pass the .npz export)"
            )
        try:
            import tensorflow as tf
        except ImportError:
            raise UserError(
                f"{source}: reading a TensorFlow checkpoint needs TensorFlow: pip install '.[tf]' "
                "(or pass the .npz export instead)"
            ) from None
        try:
            reader = tf.train.load_checkpoint(source)
            variables = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
        except Exception as err:
            raise WeightsError(f"{source}: TensorFlow cannot read this checkpoint ({type(err).__name__})") from None
    for name, shape in _expected_shapes().items():
        if name not in variables:
            raise WeightsError(f"{source}: missing variable {name} (expected DPED's 40 generator variables)")
        if tuple(variables[name].shape) != shape:
            raise WeightsError(f"{source}: {name} has shape {tuple(variables[name].shape)}, DPED's generator needs {shape}")
    return variables


def dped_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map DPED's TF variables onto ``DPEDGenerator(norm="instance")``'s state dict.

    Conv i is ``W{i}``/``b{i}`` (HWIO → OIHW); instance norm j (after conv j+2) has its
    shift in ``Variable_{2j}`` and its scale in ``Variable_{2j+1}`` (the first shift is
    ``Variable``), see ../shared/weights/dped_official/README.md.
    """
    tensor = lambda name: torch.from_numpy(np.ascontiguousarray(variables[name], dtype=np.float32))  # noqa: E731

    def conv(prefix: str, index: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": tensor(f"generator/W{index}").permute(3, 2, 0, 1).contiguous(),
                f"{prefix}.bias": tensor(f"generator/b{index}")}

    def norm(prefix: str, j: int) -> dict[str, torch.Tensor]:
        shift = "generator/Variable" + (f"_{2 * j}" if j else "")
        return {f"{prefix}.weight": tensor(f"generator/Variable_{2 * j + 1}"), f"{prefix}.bias": tensor(shift)}

    state = conv("head.0", 1)
    for block in range(_BLOCKS):
        state |= conv(f"blocks.{block}.body.0", 2 + 2 * block) | norm(f"blocks.{block}.body.1", 2 * block)
        state |= conv(f"blocks.{block}.body.3", 3 + 2 * block) | norm(f"blocks.{block}.body.4", 2 * block + 1)
    return state | conv("tail.0", 10) | conv("tail.2", 11) | conv("tail.4", 12)


def import_dped(
    source: str,
    output: str,
    phone: Literal["iphone", "blackberry", "sony"] = "iphone",
    overwrite: bool = False,
) -> None:
    """Import an official DPED generator (Ignatov et al. 2017) as a phase-1 checkpoint.

    The result is a normal ``DPEDPlus`` checkpoint built from
    configs/mpse/dped_official.yaml: ``enhance``, ``validate``, ``test`` and ``predict``
    (``--ckpt_path``) accept it, and ``fit --model.init_from OUT.ckpt`` fine-tunes from
    it. The official release holds no discriminator: the checkpoint's is freshly
    initialised (seed 0).

    Args:
        source: the official checkpoint prefix (e.g. ``models_orig/iphone_orig``, read
            with TensorFlow: ``pip install '.[tf]'``) or its ``.npz`` export.
        output: the checkpoint to write (``.ckpt``).
        phone: which phone the weights were trained for (recorded in the checkpoint).
        overwrite: replace ``output`` if it exists.
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    generator_state = dped_state_dict(read_dped_variables(source))

    model, hparams = build_phase(yaml.safe_load(OFFICIAL_CONFIG.read_text())["model"])
    model.generator.load_state_dict(generator_state)  # strict: every tensor must fit
    imported = {"source": str(source), "phone": phone, "format": "DPED official (Ignatov et al., ICCV 2017)"}
    save_phase(model, hparams, str(out), imported_from=imported)
    count = sum(v.numel() for v in generator_state.values())
    print(f"wrote {out}: official DPED {phone} generator ({count:,} parameters) as a DPEDPlus phase-1 checkpoint")
