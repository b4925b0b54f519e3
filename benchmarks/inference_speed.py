"""Generator inference throughput per variant, and as a fraction of this machine's matmul peak.

The peak is measured in the same run (a large fp32 matrix product), and each network's cost
comes from PyTorch's FLOP counter, so ``achieved FLOP/s / peak`` says how far a variant is
from what the hardware does on its easiest workload. Ratios, not absolute times, are the point.
"""

import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["matmul_peak", "flops_per_pixel", "VARIANTS", "throughput"]


def matmul_peak(dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...] = (1024, 2048), seconds: float = 2.0) -> float:
    """GFLOP/s of the fastest n x n matrix product (2n³ FLOPs) run in ``seconds`` per size.

    The best over sizes and many runs: a shared or clock-scaling machine gives noisy single
    runs, and the BLAS peaks at a size that depends on its caches.
    """
    best_rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        torch.mm(a, b)  # warm up (oneDNN/cuBLAS pick their kernels)
        best, started = float("inf"), time.perf_counter()
        while time.perf_counter() - started < seconds or best == float("inf"):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
        best_rate = max(best_rate, 2 * n**3 / best / 1e9)
    return best_rate


def flops_per_pixel(net: torch.nn.Module, device: torch.device, side: int = 128) -> float:
    """FLOPs of one forward pass per input pixel (PyTorch's counter: 2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.rand(1, 3, side, side, device=device))
    return counter.get_total_flops() / side**2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _variant(net: torch.nn.Module, device: torch.device, channels_last: bool, dtype, compiled: bool) -> Callable:
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = net.to(memory_format=layout)
    model = torch.compile(model) if compiled else model
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext

    def run(image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast():
            return model(image.contiguous(memory_format=layout))

    return run


#: name → (channels_last, autocast dtype or None, torch.compile)
VARIANTS = {
    "eager fp32": (False, None, False),
    "channels_last fp32": (True, None, False),
    "bf16": (False, torch.bfloat16, False),
    "bf16 + channels_last": (True, torch.bfloat16, False),
    "compile fp32": (False, None, True),
    "compile bf16 + channels_last": (True, torch.bfloat16, True),
}


def throughput(net: torch.nn.Module, variant: str, device: torch.device, side: int = 512, repeats: int = 3) -> dict:
    """Megapixels/s of ``net`` on a ``side`` x ``side`` image (best of ``repeats``, after a warm-up)."""
    channels_last, dtype, compiled = VARIANTS[variant]
    run = _variant(net, device, channels_last, dtype, compiled)
    image = torch.rand(1, 3, side, side, device=device)
    start = time.perf_counter()
    run(image)  # warm-up: oneDNN primitives, and the compilation for compiled variants
    _sync(device)
    warmup = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(image)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    net.to(memory_format=torch.contiguous_format)
    return {"variant": variant, "megapixels_per_s": side * side / best / 1e6, "seconds": best, "warmup_s": warmup}
