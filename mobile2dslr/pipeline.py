"""The MPSE chain at inference: phase 1 → phase 2 (feed-forward or optimize) → phase 3.

An MDIE checkpoint runs its own chain instead (F → StarGAN G → F', ``inference``
``all_high`` or ``sequential``), optionally followed by phase 3.

A phase-1 checkpoint gives the chain phase 1 (and phase 3 when asked for); a phase-2
checkpoint carries everything: its refiner (initialised from, and replacing, the
phase-1 generator), the frozen phase-1 generator (the content image of ``optimize``),
the style objective with its segmenter, and the Λ head whose per-region weights set
phase 3's per-region strength when a style reference is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import torch

from datamodules.io import read_image
from lightning_modules.nets.mdie_enhancer import InferenceMode
from lightning_modules.phase3_postprocess import RegionalEqualization, region_strength
from lightning_modules.style_optimization import optimize_style, resize_long_side

from .checkpoints import checkpoint_class, load_phase
from .errors import UserError, WeightsError
from .tiling import MemoryFormat, TiledEnhancer

__all__ = ["MPSEPipeline", "Switch"]

Switch = Literal["auto", "on", "off"]


class MPSEPipeline:
    """Enhance one photo (1, 3, H, W) in [0, 1] of any size with the configured chain.

    Args:
        ckpt: a phase-1 (``DPEDPlus``, ``import-dped``) or phase-2
            (``SemanticStyleRefinement``) checkpoint.
        device: where the networks run.
        autocast_dtype: autocast dtype of the networks (``None``: fp32); optimisation runs in fp32.
        tile: tile side of the networks at full size.
        halo: tile context (default: the network's receptive field + blend).
        max_untiled_pixels: instance-norm nets run untiled up to this size.
        memory_format: the networks' layout (``auto``: the faster on the first tile).
        compile: run the networks through ``torch.compile``.
        mode: phase 2: ``feedforward`` (one refiner pass) or ``optimize`` (per-image).
        reference: a style reference for every photo (optimize; also sets phase 3's strengths).
        gallery: a folder of professional photos; each photo's best match is its reference.
        recommender: a ReferenceRecommender checkpoint ranking ``gallery`` (default: VGG distance).
        steps, lr, working_side: optimize settings (see :func:`optimize_style`).
        style_weight, matting_weight: override the checkpoint's weights in optimize mode.
        postprocess: phase 3: ``auto`` (on for phase-2 checkpoints), ``on`` or ``off``.
        gamma: phase 3's gamma 1/2.2: ``auto`` (dark photos only), ``on`` or ``off``.
        equalize: phase 3's regional histogram equalisation (RMSHE) on or off.
        depth: RMSHE recursion depth.
        smooth: edge-aware smoothing of phase 3's luminance change (fraction of the long side).
        inference: MDIE checkpoints: ``all_high`` or ``sequential`` (default: the checkpoint's).
    """

    def __init__(
        self,
        ckpt: str,
        device: torch.device,
        autocast_dtype: Optional[torch.dtype] = None,
        tile: Optional[int] = 512,
        halo: Optional[int] = None,
        max_untiled_pixels: int = 4_000_000,
        memory_format: MemoryFormat = "contiguous",
        compile: bool = False,
        mode: Literal["feedforward", "optimize"] = "feedforward",
        reference: Optional[str] = None,
        gallery: Optional[str] = None,
        recommender: Optional[str] = None,
        steps: int = 200,
        lr: float = 0.004,
        working_side: int = 768,
        style_weight: Optional[float] = None,
        matting_weight: Optional[float] = None,
        postprocess: Switch = "auto",
        gamma: Switch = "auto",
        equalize: bool = True,
        depth: int = 2,
        smooth: float = 0.01,
        inference: Optional[InferenceMode] = None,
    ) -> None:
        if reference is not None and gallery is not None:
            raise UserError("give --reference FILE or --gallery FOLDER, not both")
        if steps < 1 or working_side < 16:
            raise UserError(f"--steps must be >= 1 and --working_side >= 16, got {steps} and {working_side}")
        cls = checkpoint_class(ckpt)
        if not hasattr(cls, "enhancer"):
            raise WeightsError(f"{ckpt}: a {cls.__name__} checkpoint does not enhance images; "
                               "pass a phase-1 or phase-2 checkpoint")
        self.module = load_phase(ckpt, cls).to(device).eval()
        self.phase2 = hasattr(self.module, "objective")
        self.mdie = hasattr(self.module, "inference")
        if inference is not None:
            if not self.mdie:
                raise UserError(f"{ckpt}: --inference {inference} applies to MDIE checkpoints only (configs/mdie/)")
            self.module.inference = inference
        if mode == "optimize" and not self.phase2:
            raise UserError(f"{ckpt}: --mode optimize needs a phase-2 checkpoint (configs/mpse/phase2_style.yaml)")
        if mode == "optimize" and reference is None and gallery is None:
            raise UserError("--mode optimize needs a style reference: --reference FILE or --gallery FOLDER")
        self.device, self.mode = device, mode
        self.steps, self.lr, self.working_side = steps, lr, working_side
        if self.phase2:
            for name, value in (("style", style_weight), ("matting", matting_weight)):
                if value is not None:
                    self.module.objective.weights[name] = value
        tiling = dict(tile=tile, halo=halo, max_untiled_pixels=max_untiled_pixels, autocast_dtype=autocast_dtype,
                      memory_format=memory_format, compile=compile)
        self.autocast_dtype = autocast_dtype
        self.network = TiledEnhancer(self.module.enhancer(), **tiling)
        self.content = TiledEnhancer(self.module.content_generator, **tiling) if self.phase2 else None
        self.fixed_reference = _load(Path(reference), device) if reference is not None else None
        self.index = None
        if gallery is not None:
            from .gallery_index import GalleryIndex  # VGG-16 and the index only when a gallery is used

            self.index = GalleryIndex(gallery, recommender)
        enabled = postprocess == "on" or (postprocess == "auto" and self.phase2)
        self.postprocess = RegionalEqualization(equalize=equalize, depth=depth, gamma=gamma, smooth=smooth).to(device) if enabled else None

    def describe(self) -> str:
        """One line saying what the chain runs."""
        parts = ["phase 2 refiner" if self.phase2 else "phase 1 generator"]
        if self.mdie:
            parts = [f"MDIE (F → G {self.module.inference} → F')"]
        if self.mode == "optimize":
            parts = ["phase 1", f"phase 2 optimize ({self.steps} steps at {self.working_side})"]
        if self.postprocess is not None:
            parts.append("phase 3 (regional RMSHE + gamma)")
        dtype = "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"
        layout = {None: "layout picked on the first tile", torch.channels_last: "channels_last"}.get(self.network.memory_format, "contiguous")
        compiled = ", torch.compile" if self.network.compiled is not None else ""
        return " → ".join(parts) + f" on {self.device} ({dtype}, {layout}{compiled})"

    def tiles_for(self, height: int, width: int) -> int:
        """How many tiles the network pass of an image this size takes."""
        return len(self.network.tiles_for(height, width))

    def _reference(self, source: Optional[Path]) -> Optional[torch.Tensor]:
        if self.fixed_reference is not None:
            return self.fixed_reference
        if self.index is None or source is None:
            return None
        best = self.index.recommend(source, 1)
        if not best:
            raise UserError(f"{self.index.gallery}: no usable reference in the gallery")
        return _load(best[0][0], self.device)

    def __call__(self, image: torch.Tensor, source: Optional[Path] = None, progress=None) -> torch.Tensor:
        """The enhanced photo (1, 3, H, W), clipped to [0, 1]."""
        reference = self._reference(source)
        weights = None
        if self.mode == "optimize":
            with torch.no_grad():
                content = self.content(image, progress=progress).clamp(0, 1) if bool(self.module.has_content_generator) else image
            output, weights = optimize_style(
                content, reference, self.module.objective, self.module.lambda_head, steps=self.steps, lr=self.lr,
                working_side=self.working_side, return_weights=True,
            )
        else:
            with torch.no_grad():
                output = self.network(image, progress=progress).float().clamp(0, 1)
            if self.phase2 and reference is not None and self.postprocess is not None:
                weights = self._region_weights(output, reference)
        if self.postprocess is None:
            return output
        return self._phase3(output, weights)

    @torch.no_grad()
    def _region_weights(self, output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        objective = self.module.objective
        small = resize_long_side(output, self.working_side)
        context = objective.context(small, resize_long_side(reference, self.working_side))
        return objective(small, context, self.module.lambda_head)[1]

    @torch.no_grad()
    def _phase3(self, output: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
        masks = strength = None
        if self.phase2:
            objective = self.module.objective
            masks = objective.regions.masks(objective.segmenter(output)).to(output.device)
            strength = region_strength(weights) if weights is not None else None
        return self.postprocess(output, masks, strength).clamp(0, 1)


def _load(path: Path, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].to(device)

