"""Device and numeric precision for inference."""

from typing import Literal, Optional

import torch

from .errors import UserError

Precision = Literal["auto", "fp32", "bf16"]

__all__ = ["Precision", "pick_device", "pick_autocast_dtype", "bf16_supported"]


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but no CUDA GPU is available")
    return chosen


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matrix work is fast here (CUDA bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_autocast_dtype(precision: Precision, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``precision``: ``auto`` is bf16 where it is fast, else fp32 (None)."""
    if precision == "fp32":
        return None
    if precision == "bf16" or bf16_supported(device):
        return torch.bfloat16
    return None
