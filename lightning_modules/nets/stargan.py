"""StarGAN's generator and discriminator (Choi et al., CVPR 2018), as MDIE uses them.

MDIE's generator translates intrinsics, not RGB: it takes [A, S] (6 channels) and the
label c̃ = [c_color, c_texture, c_noise, m] (6 values, mask vector included) and returns
[A', S']. The discriminator sees RGB images (after the composition network F') and has a
source head (real/fake, PatchGAN map) and a domain-classification head (one logit per
attribute). Layer shapes follow StarGAN's ``model.py``; instance norm uses each image's own
statistics at inference too (tiled inference gathers whole-image statistics, mobile2dslr.tiling).
"""

import torch
from torch import nn

from .intrinsic_autoencoder import pad_to_multiple

__all__ = ["StarGANGenerator", "StarGANDiscriminator"]


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    # Per-image statistics in training and at inference alike: StarGAN's running statistics
    # are never used (its test keeps G in train mode), and early in training they are far
    # from any one image's, which wrecks eval-mode outputs.
    return nn.InstanceNorm2d(channels, affine=True)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StarGANGenerator(nn.Module):
    """Conditional generator: 7x7 conv, two stride-2 downsamplings, residual blocks, two
    transposed-conv upsamplings, 7x7 conv; the label is tiled into extra input channels.

    With ``residual`` the output is the input plus the net's output, whose last conv starts
    at zero: the generator starts as the identity, so cycle and intrinsic terms hold from the
    first step and the translation learns only the change (StarGAN itself outputs tanh RGB).

    Args:
        channels: image channels in and out (6: albedo and shading).
        condition_dim: length of the label vector c̃ (3 attributes + 3 mask bits).
        width: filters of the first conv (64 in StarGAN); doubled by each downsampling.
        residual_blocks: residual blocks at 1/4 resolution (6 in StarGAN).
        residual: add the input to the output (see above).

    Example:
        >>> g = StarGANGenerator(width=8, residual_blocks=1)
        >>> g(torch.rand(2, 6, 30, 34), torch.ones(2, 6)).shape
        torch.Size([2, 6, 30, 34])
    """

    size_multiple = 4

    def __init__(self, channels: int = 6, condition_dim: int = 6, width: int = 64, residual_blocks: int = 6, residual: bool = True):
        super().__init__()
        self.channels, self.condition_dim, self.residual = channels, condition_dim, residual
        layers: list[nn.Module] = [
            nn.Conv2d(channels + condition_dim, width, 7, padding=3, bias=False),
            _instance_norm(width),
            nn.ReLU(inplace=True),
        ]
        c = width
        for _ in range(2):
            layers += [nn.Conv2d(c, c * 2, 4, stride=2, padding=1, bias=False), _instance_norm(c * 2), nn.ReLU(inplace=True)]
            c *= 2
        layers += [_ResidualBlock(c) for _ in range(residual_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False), _instance_norm(c // 2), nn.ReLU(inplace=True)]
            c //= 2
        self.body = nn.Sequential(*layers)
        self.output = nn.Conv2d(c, channels, 7, padding=3, bias=False)
        if residual:
            nn.init.zeros_(self.output.weight)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Translate (B, channels, H, W) towards the domains in ``condition`` (B, condition_dim)."""
        if condition.shape != (x.shape[0], self.condition_dim):
            raise ValueError(f"StarGANGenerator: condition must be ({x.shape[0]}, {self.condition_dim}), got {tuple(condition.shape)}")
        padded, (height, width) = pad_to_multiple(x, self.size_multiple)
        labels = condition.to(padded.dtype)[:, :, None, None].expand(-1, -1, *padded.shape[-2:])
        out = self.output(self.body(torch.cat([padded, labels], dim=1)))[..., :height, :width]
        return x + out if self.residual else out


class StarGANDiscriminator(nn.Module):
    """PatchGAN with an auxiliary classifier: ``repeat_num`` 4x4 stride-2 convs, LeakyReLU 0.01.

    Returns the source map (B, 1, P/2^r, P/2^r) (real/fake logits per patch) and the
    domain logits (B, num_attributes) from a conv spanning the whole final map, as
    StarGAN's ``Discriminator``.

    Args:
        image_size: side of the (square) training patches; must be divisible by 2^repeat_num.
        width: filters of the first conv (64 in StarGAN), doubled by each further conv.
        repeat_num: number of stride-2 convs (6 in StarGAN for 128x128).
        num_attributes: domain-classification outputs (colour, texture, noise quality).
        max_width: cap on the filters (StarGAN: none, 2048 at depth 6).

    Example:
        >>> d = StarGANDiscriminator(image_size=32, width=8, repeat_num=3)
        >>> src, cls = d(torch.rand(2, 3, 32, 32))
        >>> tuple(src.shape), tuple(cls.shape)
        ((2, 1, 4, 4), (2, 3))
    """

    def __init__(self, image_size: int = 128, width: int = 64, repeat_num: int = 6, num_attributes: int = 3, max_width: int = 2048):
        super().__init__()
        if image_size % 2**repeat_num:
            raise ValueError(
                f"StarGANDiscriminator: image_size {image_size} must be divisible by 2^repeat_num = {2 ** repeat_num}"
            )
        self.image_size = image_size
        layers: list[nn.Module] = []
        c_in, c = 3, width
        for _ in range(repeat_num):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            c_in, c = c, min(c * 2, max_width)
        self.body = nn.Sequential(*layers)
        self.source = nn.Conv2d(c_in, 1, 3, padding=1, bias=False)
        self.classes = nn.Conv2d(c_in, num_attributes, image_size // 2**repeat_num, bias=False)
        self.repeat_num = repeat_num

    @property
    def patch_size(self) -> int:
        """The patch side the classifier head is built for (checked against the data)."""
        return self.image_size

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, P, P) RGB in [0, 1] → source logits (B, 1, p, p), class logits (B, num_attributes)."""
        if image.shape[-1] != self.image_size or image.shape[-2] != self.image_size:
            raise ValueError(f"StarGANDiscriminator is built for {self.image_size}x{self.image_size} patches, got {tuple(image.shape[-2:])}")
        h = self.body(image * 2 - 1)  # StarGAN works on images in [-1, 1]
        return self.source(h), self.classes(h).flatten(1)

