"""Run a fully-convolutional enhancer on images of any size in bounded memory.

The image is cut into tiles; each tile is run with a halo of context around it and the
outputs are blended with linear ramps across the seams. With a halo at least the net's
receptive radius, a tile's core sees exactly the pixels it would see untiled, so the
tiled output equals the untiled one (up to float rounding) for nets whose layers are
local (convs, batch norm in eval mode).

Strided nets (MDIE's encoder-decoders) declare ``size_multiple`` (tiles then start on
their stride grid, so every window is convolved exactly as the whole image would be) and
``tile_halo``, the context they need in practice: their theoretical reach is hundreds of
pixels, so their tiled output matches the untiled one within a tolerance, not exactly.

Instance norm is not local: it normalises with the mean and variance of the whole
feature map. For such nets the statistics of every instance-norm layer are gathered
over all tiles first, one layer at a time (layer j's statistics need the layers before
it), then the tiles run with those whole-image statistics (DESIGN.md sec. 4).
"""

import math
import time
import warnings
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Literal, Optional

import torch
from torch import nn

__all__ = ["MemoryFormat", "TiledEnhancer", "receptive_radius", "tile_grid"]

MemoryFormat = Literal["auto", "contiguous", "channels_last"]
_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def receptive_radius(net: nn.Module) -> int:
    """Upper bound of how far (px) an output pixel looks: Σ dilation·(kernel//2) of its convs.

    Exact for a chain of stride-1 convs; residual branches only look less far.
    """
    radius = 0
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride != (1, 1):
                raise ValueError("tiling needs stride-1 (size-preserving) convolutions")
            radius += max(d * (k // 2) for k, d in zip(module.kernel_size, module.dilation))
    return radius


def tile_grid(height: int, width: int, tile: int, multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """Cores ``(y0, y1, x0, x1)`` of equal-ish tiles (at most ``tile`` px) covering the image.

    With ``multiple`` > 1 every inner boundary is a multiple of it (``tile`` is rounded down
    to one), so strided nets see each tile on the whole image's stride grid.
    """
    tile = max(multiple, tile - tile % multiple)
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)

    def edges(size: int, count: int) -> list[int]:
        inner = [min(size, multiple * round(i * size / count / multiple)) for i in range(1, count)]
        return sorted({0, size, *inner})

    ys, xs = edges(height, rows), edges(width, cols)
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


def _ramp(length: int, start: int, stop: int, blend: int, device) -> torch.Tensor:
    """1 on [start, stop), falling linearly to 0 over ``blend`` px outside it."""
    position = torch.arange(length, device=device, dtype=torch.float32)
    if blend == 0:
        return ((position >= start) & (position < stop)).float()
    before = (position - (start - blend)) / blend
    after = ((stop - 1 + blend) - position) / blend
    return before.clamp(0, 1).minimum(after.clamp(0, 1))


class _InstanceNormStats:
    """Forward hooks that make instance-norm layers use given (whole-image) statistics.

    ``fixed[i]`` holds (mean, var) of layer ``i``; layer ``collect`` accumulates the
    sums of its input over the tile core and then stops the forward pass.
    """

    class Stop(Exception):
        """Raised once the collecting layer has its input: the rest is not needed."""

    def __init__(self, layers: list[nn.InstanceNorm2d]):
        self.layers = layers
        self.fixed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.collect: Optional[int] = None
        self.core: tuple[int, int, int, int] = (0, 0, 0, 0)  # core inside the current window
        self.window: tuple[int, int] = (1, 1)  # the current window's (height, width)
        self.sums: Optional[torch.Tensor] = None
        self.count = 0

    @contextmanager
    def hooks(self) -> Iterator[None]:
        handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, index: int) -> Callable:
        def hook(module: nn.InstanceNorm2d, inputs, output):
            x = inputs[0]
            if index == self.collect:
                y0, y1, x0, x1 = self._scaled_core(x.shape[-2:])
                core = x[0, :, y0:y1, x0:x1].double().flatten(1)
                sums = torch.stack([core.sum(1), core.pow(2).sum(1)])
                self.sums = sums if self.sums is None else self.sums + sums
                self.count += core.shape[1]
                raise self.Stop
            if index in self.fixed:
                mean, var = self.fixed[index]
                y = (x - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + module.eps)
                if module.affine:
                    y = y * module.weight.view(1, -1, 1, 1).to(x.dtype) + module.bias.view(1, -1, 1, 1).to(x.dtype)
                return y
            return output

        return hook

    def _scaled_core(self, size: torch.Size) -> tuple[int, int, int, int]:
        """The core in a (possibly downsampled, possibly padded) feature map of the window.

        Strided nets see windows on their stride grid, so the scale is exact; a core that
        reaches the window's end also takes the padding the net adds there, as the untiled
        net's statistics include the padding at the image's end.
        """
        (y0, y1, x0, x1), (height, width) = self.core, self.window
        # The map's stride: 1, 2, 4... (a padded map is a little larger than window / stride).
        fy, fx = max(1, round(height / size[0])), max(1, round(width / size[1]))
        y_end = size[0] if y1 == height else y1 // fy
        x_end = size[1] if x1 == width else x1 // fx
        return y0 // fy, y_end, x0 // fx, x_end

    def finish_layer(self) -> None:
        mean = self.sums[0] / self.count
        var = (self.sums[1] / self.count - mean.pow(2)).clamp_min(0)  # biased, as instance norm
        self.fixed[self.collect] = (mean.float().view(1, -1, 1, 1), var.float().view(1, -1, 1, 1))
        self.collect, self.sums, self.count = None, None, 0


class TiledEnhancer:
    """Apply a size-preserving image-to-image net to one image of any size.

    A net may split itself into ``global_preprocess`` (whole-image operations such as
    histogram equalisation, run once, untiled) and ``local_forward`` (the convolutional
    part, run tile by tile); otherwise the whole net is tiled.

    Args:
        net: maps (1, 3, H, W) to (1, 3, H, W); put in eval mode here.
        tile: side of a tile's core in pixels; ``None`` runs untiled.
        halo: context around each tile (default: the net's ``tile_halo`` if it declares one,
            else its receptive radius, + ``blend``; rounded up to its ``size_multiple``).
        blend: width of the linear blend across seams.
        max_untiled_pixels: nets with instance norm run untiled up to this many pixels
            (exact and cheapest); larger images use tiles with whole-image statistics.
        autocast_dtype: run the net under ``torch.autocast`` with this dtype (e.g. bf16).
        memory_format: ``contiguous`` (NCHW), ``channels_last`` (NHWC), or ``auto``: a
            256-px crop of the first tile runs in both layouts and the faster one is kept
            (which wins depends on the net, the dtype and the machine; ``make bench`` shows both).
        compile: run the net through ``torch.compile`` (dynamic shapes; the first tiles
            are slow while it compiles). Not used while whole-image instance-norm
            statistics are gathered; falls back to eager, with a warning, if compiling fails.
    """

    def __init__(
        self,
        net: nn.Module,
        tile: Optional[int] = 512,
        halo: Optional[int] = None,
        blend: int = 16,
        max_untiled_pixels: int = 4_000_000,
        autocast_dtype: Optional[torch.dtype] = None,
        memory_format: MemoryFormat = "contiguous",
        compile: bool = False,
    ):
        self.net = net.eval()
        self.local = getattr(net, "local_forward", net)
        self.preprocess = getattr(net, "global_preprocess", None)
        self.tile = tile
        self.blend = blend
        self.multiple = int(getattr(net, "size_multiple", 1))
        if halo is None:
            halo = (net.tile_halo if hasattr(net, "tile_halo") else receptive_radius(net)) + blend
        self.halo = -(-halo // self.multiple) * self.multiple
        self.max_untiled_pixels = max_untiled_pixels
        self.autocast_dtype = autocast_dtype
        self.memory_format: Optional[torch.memory_format] = None if memory_format == "auto" else _FORMATS[memory_format]
        self.net.to(memory_format=self.memory_format or torch.contiguous_format)
        self.compiled = torch.compile(self.local, dynamic=True) if compile else None
        # Instance norm with running statistics is a fixed affine map in eval mode: local.
        self.norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]
        if self.norms:
            self.norms = self._forward_order(self.norms)

    def _forward_order(self, layers: list[nn.InstanceNorm2d]) -> list[nn.InstanceNorm2d]:
        order: list[nn.InstanceNorm2d] = []
        handles = [layer.register_forward_hook(lambda m, i, o: order.append(m)) for layer in layers]
        try:
            with torch.no_grad():
                device = next(self.net.parameters()).device
                self.local(torch.zeros(1, 3, 8, 8, device=device))
        finally:
            for handle in handles:
                handle.remove()
        return order

    def _run(self, x: torch.Tensor, gathering: bool = False) -> torch.Tensor:
        context = torch.autocast(x.device.type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with context:
            if self.memory_format is None and not gathering:
                return self._pick_memory_format(x)
            x = x.contiguous(memory_format=self.memory_format or torch.contiguous_format)
            if self.compiled is not None and not gathering:
                try:
                    return self.compiled(x)
                except Exception as err:  # no compiler toolchain, an unsupported op...: eager still works
                    warnings.warn(f"torch.compile failed, running eager ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
                    self.compiled = None
            return self.local(x)

    def _pick_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """Time a 256-px crop in each layout, keep the faster one, then run ``x`` with it."""
        trial = x[..., :256, :256]
        timings = {}
        for layout in (torch.contiguous_format, torch.channels_last):
            self.net.to(memory_format=layout)
            self.local(trial[..., :64, :64].contiguous(memory_format=layout))  # library set-up is not the layout's cost
            start = time.perf_counter()
            out = self.local(trial.contiguous(memory_format=layout))
            if out.device.type == "cuda":
                torch.cuda.synchronize(out.device)
            timings[layout] = time.perf_counter() - start
        self.memory_format = min(timings, key=timings.get)
        self.net.to(memory_format=self.memory_format)
        return self.local(x.contiguous(memory_format=self.memory_format))

    def tiles_for(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The tile cores used for an image of this size (one core when untiled)."""
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return [(0, height, 0, width)]
        if self.norms and height * width <= self.max_untiled_pixels:
            return [(0, height, 0, width)]
        return tile_grid(height, width, self.tile, self.multiple)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, progress: Optional[Callable[[int], None]] = None) -> torch.Tensor:
        """Enhance ``image`` (1, 3, H, W) in [0, 1]; returns (1, 3, H, W) float32 on its device.

        ``progress`` is called with the number of tiles done after each tile.
        """
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"TiledEnhancer takes one image (1, 3, H, W), got shape {tuple(image.shape)}")
        if self.preprocess is not None:
            image = self.preprocess(image)
        height, width = image.shape[-2:]
        cores = self.tiles_for(height, width)
        if len(cores) == 1:
            out = self._run(image).float()
            if progress:
                progress(1)
            return out
        stats = _InstanceNormStats(self.norms) if self.norms else None
        with stats.hooks() if stats else nullcontext():
            for layer in range(len(self.norms)):  # whole-image statistics, one layer at a time
                stats.collect = layer
                for core in cores:
                    window, inner = self._window(core, height, width)
                    stats.core, stats.window = inner, (window[1] - window[0], window[3] - window[2])
                    try:
                        self._run(image[..., window[0] : window[1], window[2] : window[3]], gathering=True)
                    except _InstanceNormStats.Stop:
                        pass
                stats.finish_layer()
            return self._blend_tiles(image, cores, progress)

    def _window(self, core, height, width) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        y0, y1, x0, x1 = core
        wy0, wy1 = max(0, y0 - self.halo), min(height, y1 + self.halo)
        wx0, wx1 = max(0, x0 - self.halo), min(width, x1 + self.halo)
        return (wy0, wy1, wx0, wx1), (y0 - wy0, y1 - wy0, x0 - wx0, x1 - wx0)

    def _blend_tiles(self, image, cores, progress) -> torch.Tensor:
        height, width = image.shape[-2:]
        out = torch.zeros(1, 3, height, width, device=image.device)
        weight = torch.zeros(1, 1, height, width, device=image.device)
        for done, core in enumerate(cores, start=1):
            (wy0, wy1, wx0, wx1), (iy0, iy1, ix0, ix1) = self._window(core, height, width)
            pred = self._run(image[..., wy0:wy1, wx0:wx1]).float()
            wy = _ramp(wy1 - wy0, iy0, iy1, self.blend, image.device)
            wx = _ramp(wx1 - wx0, ix0, ix1, self.blend, image.device)
            w = (wy[:, None] * wx[None, :])[None, None]
            out[..., wy0:wy1, wx0:wx1] += pred * w
            weight[..., wy0:wy1, wx0:wx1] += w
            if progress:
                progress(done)
        return out / weight
