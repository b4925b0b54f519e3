"""MDIE's symmetric intrinsic networks: decomposition F and composition F' (thesis sec. 3.2.1).

Both are the same encoder-decoder (Janner et al. 2017, "Self-Supervised Intrinsic Image
Decomposition", which the thesis follows): five 3x3 stride-2 convs with {16, 32, 64, 128,
256} filters, each followed by BatchNorm and ReLU, and a mirrored decoder whose convs are
followed by sub-pixel (PixelShuffle x2) upsampling, BatchNorm and ReLU, then an output conv.
As in Janner et al. the decoder receives the encoder's features of the same scale (skip
connections; ``skip_connections=False`` gives the plain autoencoder).
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IntrinsicAutoencoder", "IntrinsicDecomposer", "IntrinsicComposer", "pad_to_multiple"]


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom and right to sides divisible by ``multiple``.

    Reflect padding where the image is large enough (no artificial edge for the convs to
    see), else replicate. Returns the padded tensor and the original (H, W) to crop back to.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    # Sub-pixel upsampling (Shi et al. 2016): the conv makes 4x the channels, PixelShuffle(2)
    # rearranges them into a map twice the size.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels * 4, 3, padding=1, bias=False),
        nn.PixelShuffle(2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class IntrinsicAutoencoder(nn.Module):
    """Encoder of stride-2 convs, decoder of sub-pixel upsampling convs, any input size.

    Inputs are padded (reflect) at the bottom/right to a multiple of ``2 ** len(widths)``
    (32 for five levels; Sintel frames are 1024x436) and the output is cropped back.

    Args:
        in_channels: input channels (3 for F, 6 for F').
        out_channels: output channels (6 for F: albedo and shading; 3 for F').
        widths: filters of the encoder convs, coarsest last; the decoder mirrors them.
        skip_connections: concatenate each encoder level's features to the decoder's
            input at the same scale (U-Net style, as Janner et al.).

    Example:
        >>> net = IntrinsicAutoencoder(3, 6)
        >>> net(torch.rand(1, 3, 50, 70)).shape
        torch.Size([1, 6, 50, 70])
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 6,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        skip_connections: bool = True,
    ):
        super().__init__()
        widths = list(widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"IntrinsicAutoencoder: widths must be positive, got {widths}")
        self.size_multiple = 2 ** len(widths)
        self.skip_connections = skip_connections
        self.encoder = nn.ModuleList(_down(c_in, c_out) for c_in, c_out in zip([in_channels] + widths[:-1], widths))
        # Decoder level k upsamples to the scale of encoder level k-1: 256→128→64→32→16→16.
        outs = widths[-2::-1] + [widths[0]]
        ins = [widths[-1]] + [c * (2 if skip_connections else 1) for c in outs[:-1]]
        self.decoder = nn.ModuleList(_up(c_in, c_out) for c_in, c_out in zip(ins, outs))
        self.output = nn.Conv2d(outs[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) → (B, out_channels, H, W), no output activation."""
        x, (height, width) = pad_to_multiple(x, self.size_multiple)
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        for level, layer in enumerate(self.decoder):
            x = layer(x)
            skip = len(features) - 2 - level  # the encoder level at this scale (none at full size)
            if self.skip_connections and skip >= 0:
                x = torch.cat([x, features[skip]], dim=1)
        return self.output(x)[..., :height, :width]


class IntrinsicDecomposer(nn.Module):
    """F: image → (albedo A, shading S), an :class:`IntrinsicAutoencoder` with 6 outputs.

    Albedo goes through a sigmoid (reflectance lies in [0, 1]); shading through a softplus:
    positive and not capped at 1 (the scale of shading is ambiguous, DESIGN.md sec. 1).

    Args:
        widths: encoder filters (the thesis: 16, 32, 64, 128, 256).
        skip_connections: U-Net skips between encoder and decoder.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 256), skip_connections: bool = True):
        super().__init__()
        self.net = IntrinsicAutoencoder(3, 6, widths, skip_connections)
        self.size_multiple = self.net.size_multiple

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] → albedo (B, 3, H, W) in (0, 1), shading (B, 3, H, W) > 0."""
        out = self.net(image)
        return torch.sigmoid(out[:, :3]), F.softplus(out[:, 3:])


class IntrinsicComposer(nn.Module):
    """F': (albedo, shading) → image, the same network shape with 6 inputs and 3 outputs.

    A learned composition instead of ``A·S``, so that reconstruction on real photos does
    not reward the meaningless A = I, S = 1 (thesis sec. 3.2.1). Output through a sigmoid.

    Args:
        widths: encoder filters (the thesis: 16, 32, 64, 128, 256).
        skip_connections: U-Net skips between encoder and decoder.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 256), skip_connections: bool = True):
        super().__init__()
        self.net = IntrinsicAutoencoder(6, 3, widths, skip_connections)
        self.size_multiple = self.net.size_multiple

    def forward(self, albedo: torch.Tensor, shading: torch.Tensor) -> torch.Tensor:
        """Albedo and shading (B, 3, H, W) each → image (B, 3, H, W) in (0, 1)."""
        return torch.sigmoid(self.net(torch.cat([albedo, shading], dim=1)))
