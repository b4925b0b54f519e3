"""StarGAN's losses with the mask vector: adversarial (GAN or WGAN-GP), masked domain
classification, gradient penalty and cycle reconstruction (Choi et al. 2018; thesis sec. 3.2.2).
"""

from typing import Callable, Literal

import torch
import torch.nn.functional as F

__all__ = [
    "Adversarial", "adversarial_d_loss", "adversarial_g_loss", "gradient_penalty",
    "masked_classification_loss", "cycle_loss",
]

Adversarial = Literal["gan", "wgan-gp"]


def adversarial_d_loss(real: torch.Tensor, fake: torch.Tensor, kind: Adversarial = "gan") -> torch.Tensor:
    """The discriminator's adversarial loss on its source logits (any shape, e.g. PatchGAN maps).

    ``gan`` (the thesis): ``−E[log D(x)] − E[log(1 − D(G(x, c)))]``, i.e. binary
    cross-entropy with targets 1 (real) and 0 (fake), means over patches and batch.
    ``wgan-gp`` (StarGAN's code): ``−E[D(x)] + E[D(G(x, c))]``; add :func:`gradient_penalty`.

    Example:
        >>> big = torch.full((2, 1, 2, 2), 20.0)
        >>> float(adversarial_d_loss(big, -big)) < 1e-8   # a perfect discriminator
        True
    """
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def adversarial_g_loss(fake: torch.Tensor, kind: Adversarial = "gan") -> torch.Tensor:
    """The generator's adversarial loss: ``−E[log D(G(x, c))]`` (non-saturating) or ``−E[D(G(x, c))]``."""
    if kind == "wgan-gp":
        return -fake.mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` at ``x̂ = ε·real + (1 − ε)·fake``, ε ~ U(0, 1) per sample.

    The gradient of the summed source output per sample, its L2 norm over all of the
    sample's pixels (StarGAN's ``gradient_penalty``); differentiable (``create_graph``) so
    that the discriminator's step minimises it.

    Args:
        critic: maps images (B, 3, H, W) to source scores (B, ...).
        real: real images (B, 3, H, W).
        fake: generated images, detached (B, 3, H, W).
    """
    epsilon = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)
    scores = critic(mixed)
    (gradient,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (gradient.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def masked_classification_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each attribute's quality logit, counted only where the mask is 1.

    With the mask vector each image carries the label of its own dataset only (colour,
    texture or noise quality); the other attributes are unknown and must not be pushed
    either way. Summed over attributes, averaged over the batch (StarGAN's
    ``binary_cross_entropy_with_logits(..., reduction='sum') / batch``).

    Args:
        logits: (B, A) domain logits of the discriminator.
        labels: (B, A) targets in {0, 1} (values under a 0 mask are ignored).
        mask: (B, A) 1 for known attributes, 0 for unknown.

    Example:
        >>> logits = torch.tensor([[5.0, -3.0, 9.0]])
        >>> labels, mask = torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]])
        >>> float(masked_classification_loss(logits, labels, mask))   # nothing known: no loss
        0.0
    """
    if logits.shape != labels.shape or logits.shape != mask.shape:
        raise ValueError(
            f"masked_classification_loss: logits, labels and mask must share one shape (B, A), got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)}, {tuple(mask.shape)}"
        )
    per_attribute = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return (per_attribute * mask.to(logits.dtype)).sum() / logits.shape[0]


def cycle_loss(image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Cycle reconstruction ``E[‖x − G(G(x, c), c')‖₁]``, here on RGB: the mean absolute error."""
    return F.l1_loss(reconstruction, image)
