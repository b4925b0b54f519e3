"""Hyperparameters of modules whose nets are constructor arguments."""

from torch import nn

try:  # set by LightningCLI while it instantiates the model: the nets' config (class_path)
    from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters
except ImportError:  # pragma: no cover - older/newer Lightning without it
    _given_hyperparameters = None

__all__ = ["nets_without_config"]


def nets_without_config(init_args: dict) -> list[str]:
    """Names of ``nn.Module`` arguments that have no config to save in the checkpoint.

    Built by LightningCLI, a net argument is saved as its ``class_path`` config and the
    checkpoint rebuilds it (``load_from_checkpoint``). Built in Python, it would be
    pickled whole into the checkpoint (unsafe to load): such arguments are left out of
    the hyperparameters, and the caller passes the nets again when loading.
    """
    given = _given_hyperparameters.get() if _given_hyperparameters is not None else None
    return [name for name, value in init_args.items() if name != "self" and isinstance(value, nn.Module) and not (given and name in given)]
