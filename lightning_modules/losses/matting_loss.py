"""DPST's photorealism regulariser: the Matting Laplacian quadratic form Lm.

Lm = Σ_c V_c[O]ᵀ M_I V_c[O], where V_c[O] is channel c of the output flattened row-major
(pixel i = y·W + x, i.e. ``image[c].reshape(-1)``) and M_I is Levin et al.'s closed-form
Matting Laplacian of the guide I (the input photo). It is ~0 when O is locally an affine
function of I's colours, so it penalises distortions that are not local colour transforms.

M_I is built on the CPU by ``pymatting.cf_laplacian`` (numba). ``import pymatting`` compiles
all of pymatting's kernels the first time (≈40 s on 2 cores) and caches them (numba
``cache=True``, in pymatting's ``__pycache__`` or ``NUMBA_CACHE_DIR``); later imports take
≈1 s. It is imported lazily, on the first :func:`matting_laplacian` call.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["matting_laplacian", "matting_loss", "MattingLoss"]


def matting_laplacian(
    guide: np.ndarray, eps: float = 1e-7, radius: int = 1, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Levin et al.'s Matting Laplacian of ``guide`` as a sparse COO tensor (H·W, H·W).

    M_ij = Σ_{k | (i, j) ∈ w_k} (δ_ij − (1 + (I_i − μ_k)ᵀ (Σ_k + ε/|w_k| · I₃)⁻¹ (I_j − μ_k)) / |w_k|)

    over the (2·radius + 1)² windows w_k lying fully inside the image (μ_k, Σ_k: mean and
    covariance of the guide's colours in w_k). Pixels are in row-major order, i = y·W + x.
    The matrix is symmetric, its rows sum to 0, and it is built in float64 and cast to
    ``dtype``. COO is used because ``torch.sparse.mm`` differentiates it w.r.t. the dense
    operand on every device (CSR support is still beta).

    Args:
        guide: (H, W, 3) float RGB in [0, 1], e.g. from ``datamodules.io.read_image``.
        eps: regularisation ε (Levin's and DPST's 1e-7).
        radius: window radius (1: 3x3 windows).
        dtype: dtype of the returned tensor.

    Example:
        >>> m = matting_laplacian(np.random.rand(4, 5, 3))
        >>> m.shape, m.layout
        (torch.Size([20, 20]), torch.sparse_coo)
    """
    if guide.ndim != 3 or guide.shape[2] != 3:
        raise ValueError(f"matting_laplacian expects an (H, W, 3) guide, got shape {guide.shape}")
    if min(guide.shape[:2]) < 2 * radius + 1:
        raise ValueError(
            f"matting_laplacian needs a guide of at least {2 * radius + 1}x{2 * radius + 1} pixels, "
            f"got {guide.shape[0]}x{guide.shape[1]}"
        )
    from pymatting import cf_laplacian  # slow first import: see the module docstring

    laplacian = cf_laplacian(np.ascontiguousarray(guide, dtype=np.float64), epsilon=eps, radius=radius)
    # pymatting's CSR holds explicit zeros (at column 0) for neighbours outside the image.
    laplacian.sum_duplicates()
    laplacian.eliminate_zeros()
    coo = laplacian.tocoo()  # from canonical CSR: sorted row-major, no duplicates
    indices = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data).to(dtype)
    return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False, is_coalesced=True)


def matting_loss(image: torch.Tensor, laplacians: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over the batch of Σ_c V_cᵀ M V_c (a sum over channels and pixels, per image).

    Differentiable w.r.t. ``image`` (the gradient is 2·M·V_c per channel); the Laplacians
    are constants. Images are in [0, 1], the range the Laplacians' guides were in.

    Args:
        image: (B, 3, H, W), the output O.
        laplacians: B sparse (H·W, H·W) Matting Laplacians (:func:`matting_laplacian`), one
            per image; cast to the image's dtype and device when they differ.

    Example:
        >>> guide = np.random.rand(6, 6, 3)
        >>> image = torch.from_numpy(0.5 * guide + 0.1).permute(2, 0, 1)[None]  # affine in the guide
        >>> laplacians = [matting_laplacian(guide, dtype=torch.float64)]
        >>> float(matting_loss(image, laplacians)) < 1e-5  # ≈ ε·|a|² per window and channel
        True
        >>> float(matting_loss(torch.rand_like(image), laplacians)) > 1.0
        True
    """
    if image.ndim != 4:
        raise ValueError(f"matting_loss expects a (B, C, H, W) image, got shape {tuple(image.shape)}")
    batch, channels, height, width = image.shape
    if len(laplacians) != batch:
        raise ValueError(f"matting_loss expects one Laplacian per image: {batch} images, {len(laplacians)} Laplacians")
    n = height * width
    total = image.new_zeros(())
    for b, laplacian in enumerate(laplacians):
        if tuple(laplacian.shape) != (n, n):
            raise ValueError(
                f"matting_loss: Laplacian {b} has shape {tuple(laplacian.shape)}, expected ({n}, {n}) for a "
                f"{height}x{width} image (H·W = {n}); was it built for another crop?"
            )
        laplacian = laplacian.to(device=image.device, dtype=image.dtype)
        v = image[b].reshape(channels, n).t()  # (H·W, C), row-major pixels
        total = total + (v * torch.sparse.mm(laplacian, v)).sum()
    return total / batch


class MattingLoss(nn.Module):
    """Module form of :func:`matting_loss`, with :meth:`laplacians` to build M_I for a batch.

    Args:
        weight: the loss weight λ in the objective (1e4, DPST's matting : content = 1e4 : 5).
        eps: the Laplacian's regularisation ε.
        radius: the Laplacian's window radius.
    """

    def __init__(self, weight: float = 1e4, eps: float = 1e-7, radius: int = 1):
        super().__init__()
        self.weight = weight
        self.eps = eps
        self.radius = radius

    @torch.no_grad()
    def laplacians(self, guides: torch.Tensor) -> list[torch.Tensor]:
        """Matting Laplacians of guides (B, 3, H, W) in [0, 1], built on the CPU in numpy.

        Each is float32 (the guides' dtype if floating) and on the guides' device.
        """
        if guides.ndim != 4 or guides.shape[1] != 3:
            raise ValueError(f"MattingLoss.laplacians expects (B, 3, H, W) guides, got shape {tuple(guides.shape)}")
        dtype = guides.dtype if guides.is_floating_point() else torch.float32
        arrays = guides.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
        return [matting_laplacian(array, self.eps, self.radius, dtype).to(guides.device) for array in arrays]

    def forward(self, image: torch.Tensor, laplacians: Sequence[torch.Tensor]) -> torch.Tensor:
        """The unweighted loss (multiply by ``self.weight`` for the objective)."""
        return matting_loss(image, laplacians)
