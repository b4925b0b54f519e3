"""What the frozen ImageNet VGG feature extractors (VGG-16, VGG-19) share.

Each builds torchvision's ``vgg*().features`` up to the deepest layer it needs, loads
offline weights (or random ones, announced loudly), keeps them out of checkpoints,
stays in eval mode, and returns the features of named layers. Subclasses say which VGG
(``config``, ``layer_names``), where the ImageNet weights come from and how an RGB image
in [0, 1] is normalised.
"""

from typing import Optional, Sequence

import torch
from torch import nn
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from mobile2dslr.errors import WeightsError

from .pretrained import load_state_dict_file, warn_random_weights

__all__ = ["FrozenVGG", "vgg_layer_names"]


def vgg_layer_names(convs_per_block: Sequence[int]) -> tuple[str, ...]:
    """Names of torchvision's ``vgg*().features`` entries in order: conv1_1, relu1_1, ..., pool5."""
    return tuple(
        name
        for block, convs in enumerate(convs_per_block, start=1)
        for name in [n for i in range(1, convs + 1) for n in (f"conv{block}_{i}", f"relu{block}_{i}")] + [f"pool{block}"]
    )


class FrozenVGG(nn.Module):
    """Base of the frozen VGG feature extractors (see the module docstring).

    Subclasses set ``config`` (torchvision's ``cfgs`` key), ``layer_names``, ``label``
    (for messages), ``ceil_mode`` (TF 'SAME'-like pools), and implement
    :meth:`imagenet_state` and :meth:`normalize`.

    Args:
        layers: layer names :meth:`forward` returns.
        weights: ``imagenet`` (offline), ``random`` (tests only), or the path of a state
            dict for torchvision's ``vgg*().features`` (or the whole ``vgg*()``).
        also_build: layers the network must reach besides ``layers`` (e.g. for a descriptor).
    """

    config: str = ""
    layer_names: tuple[str, ...] = ()
    label: str = "VGG"
    ceil_mode: bool = False

    def __init__(self, layers: Sequence[str], weights: str = "imagenet", also_build: Sequence[str] = ()):
        super().__init__()
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown or not layers:
            raise ValueError(
                f"unknown {self.label} layer(s) {unknown or '(none given)'}; valid: {', '.join(self.layer_names)}"
            )
        self.layers = tuple(layers)
        last = max(self.layer_names.index(name) for name in (*layers, *also_build))
        self.weights = weights
        state = self._pretrained_state(weights)
        # Pretrained: build on the meta device and assign the weights (skips a costly random init).
        with torch.device("meta" if state is not None else "cpu"):
            self.net = make_layers(vgg_cfgs[self.config])[: last + 1]
        for module in self.net:
            if isinstance(module, nn.MaxPool2d):
                module.ceil_mode = self.ceil_mode
            if isinstance(module, nn.ReLU):
                module.inplace = False  # intermediate features are returned
        if state is not None:
            self._load(state, weights)
        self.net.requires_grad_(False)
        # Keep the frozen weights out of checkpoints and tolerate their absence on load.
        self.register_state_dict_post_hook(_drop_own_keys)
        self.register_load_state_dict_pre_hook(_keep_own_weights)
        self.eval()

    def _load(self, state: dict, weights: str) -> None:
        own = self.net.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise WeightsError(f"{weights}: {self.label} weights lack {len(missing)} tensors, e.g. {missing[0]}")
        shapes = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if shapes:
            raise WeightsError(f"{weights}: {self.label} tensor {shapes[0]} has shape {tuple(state[shapes[0]].shape)}")
        self.net.load_state_dict({k: state[k].float() for k in own}, assign=True)

    def imagenet_state(self) -> Optional[dict]:
        """The ImageNet state dict for ``vgg*().features``, or None when its package is missing."""
        raise NotImplementedError

    #: Why :meth:`imagenet_state` can return None (for the random-weights warning).
    imagenet_missing = "its weights package is not installed"

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Map RGB in [0, 1] to the network's input."""
        raise NotImplementedError

    def _pretrained_state(self, weights: str) -> Optional[dict]:
        if weights == "random":
            return None
        if weights == "imagenet":
            state = self.imagenet_state()
            if state is None:
                warn_random_weights(self.label, self.imagenet_missing)
                self.weights = "random"
            return state
        # torchvision's whole-model state dicts name the convs ``features.N``.
        return {k.removeprefix("features."): v for k, v in load_state_dict_file(weights).items()}

    def train(self, mode: bool = True) -> "FrozenVGG":
        return super().train(False)  # frozen: always eval

    def features(self, image: torch.Tensor, wanted: set) -> dict[str, torch.Tensor]:
        """Features of ``image`` (B, 3, H, W) RGB in [0, 1] at the ``wanted`` layers."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        x = self.normalize(image)
        out = {}
        for name, module in zip(self.layer_names, self.net):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of ``image`` (B, 3, H, W) RGB in [0, 1] at each requested layer."""
        return self.features(image, set(self.layers))


def _drop_own_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "net.")]:
        del state_dict[key]


def _keep_own_weights(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # Checkpoints hold no VGG weights: feed back the loaded ones so nothing is "missing".
    for name, tensor in module.net.state_dict().items():
        state_dict.setdefault(f"{prefix}net.{name}", tensor)
