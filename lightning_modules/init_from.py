"""Start a phase from another phase's checkpoint: load the sub-networks that fit."""

from typing import Sequence

from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from mobile2dslr.errors import WeightsError

from .nets.pretrained import load_state_dict_file, state_dict_mismatch

__all__ = ["init_parts_from"]


def init_parts_from(path: str, parts: dict[str, nn.Module], required: Sequence[str] = ()) -> list[str]:
    """Load ``<name>.*`` weights of a checkpoint (or state dict file) into each named part.

    Args:
        path: a phase checkpoint or a ``torch.save``-d state dict.
        parts: attribute name in the checkpoint's LightningModule → the net to fill.
        required: parts that must load; the others start fresh (with a warning) when the
            checkpoint has no weights for them or weights of another shape.

    Returns:
        The names of the parts that were loaded.

    Raises:
        WeightsError: a required part is missing or does not fit (one line).
    """
    state = load_state_dict_file(path)
    loaded = []
    for name, net in parts.items():
        part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        problem = state_dict_mismatch(net.state_dict(), part)
        if problem is None:
            net.load_state_dict(part)
            loaded.append(name)
        elif name in required:
            raise WeightsError(f"{path}: its {name} does not fit this {name}'s config ({problem})")
        elif not part:  # an earlier stage without this net (or DPED's release, which has no discriminator)
            rank_zero_info(f"{path}: has no {name}; the {name} starts from random weights")
        else:  # e.g. a discriminator for another patch size
            rank_zero_warn(f"{path}: {name} weights not used ({problem})")
    return loaded
