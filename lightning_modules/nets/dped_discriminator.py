"""DPED texture discriminator (Ignatov et al., ICCV 2017, `models.adversarial`)."""

import math

import torch
from torch import nn

__all__ = ["DPEDDiscriminator"]


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, norm: bool) -> nn.Sequential:
    # Odd kernels with k//2 zero padding give ceil(P / stride) outputs, as TF's 'SAME'.
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2), nn.LeakyReLU(0.2)]
    if norm:
        # The paper says batch norm; the official code uses instance norm after the activation.
        layers.append(nn.InstanceNorm2d(out_ch, eps=1e-3, affine=True))
    return nn.Sequential(*layers)


class DPEDDiscriminator(nn.Module):
    """DPED's CNN discriminator on grayscale patches: is this patch from the DSLR?

    11x11 s4 (48) → 5x5 s2 (128) → 3x3 (192) → 3x3 (192) → 3x3 s2 (128), each conv
    followed by LeakyReLU 0.2 and, for convs 2-5, instance norm (eps 1e-3, affine);
    then FC 1024 + LeakyReLU 0.2 → FC 2 → softmax. The FC input is
    ``128 * ceil(P / 16) ** 2`` (6272 for 100x100 patches), so the patch size is fixed.

    Output column 0 is the probability that the patch is a DSLR photo, column 1 that
    it is an enhanced one (DPED's target ``[adv, 1 - adv]``).

    Args:
        patch_size: side of the square patches it will see (100 in DPED).
        in_channels: 1 for DPED's grayscale input.

    Example:
        >>> d = DPEDDiscriminator(patch_size=32)
        >>> p = d(torch.rand(4, 1, 32, 32))
        >>> p.shape, torch.allclose(p.sum(1), torch.ones(4))
        (torch.Size([4, 2]), True)
    """

    def __init__(self, patch_size: int = 100, in_channels: int = 1):
        super().__init__()
        self.patch_size = patch_size
        self.features = nn.Sequential(
            _conv(in_channels, 48, 11, 4, norm=False),
            _conv(48, 128, 5, 2, norm=True),
            _conv(128, 192, 3, 1, norm=True),
            _conv(192, 192, 3, 1, norm=True),
            _conv(192, 128, 3, 2, norm=True),
        )
        side = math.ceil(patch_size / 16)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, 2),
            nn.Softmax(dim=1),
        )

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[p_dslr, p_enhanced]`` of each patch.

        Args:
            patch: (B, in_channels, P, P) with P the constructor's ``patch_size``.

        Returns:
            (B, 2) probabilities that sum to 1 per row.
        """
        if patch.ndim != 4 or patch.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(
                f"DPEDDiscriminator was built for {self.patch_size}x{self.patch_size} patches, "
                f"got shape {tuple(patch.shape)}: set the discriminator's patch_size to the data's patch_size"
            )
        return self.classifier(self.features(patch))
