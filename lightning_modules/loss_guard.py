"""Stop a run before a NaN or infinite loss reaches the weights (DESIGN.md sec. 7)."""

import torch

__all__ = ["stop_if_not_finite"]


def stop_if_not_finite(iteration: int, total: torch.Tensor, terms: dict[str, torch.Tensor], network: str = "training") -> None:
    """Raise ``FloatingPointError`` naming the iteration and the bad terms if ``total`` is not finite.

    Called before the optimizer step, so no NaN weights reach a checkpoint; the CLI turns it
    into one line and exit status 3.

    Args:
        iteration: iterations done so far (the message names the next one).
        total: the loss about to be back-propagated.
        terms: its unweighted terms, to say which of them is not finite.
        network: which network's loss it is (``generator``, ``discriminator``...).
    """
    if torch.isfinite(total).item():
        return
    bad = [f"{name}={value.item():.4g}" for name, value in terms.items() if not torch.isfinite(value).item()]
    detail = f" ({', '.join(bad)})" if bad else ""
    raise FloatingPointError(f"iteration {iteration + 1}: {network} loss is {total.item()}{detail}; stopping before it is applied")
