"""``mobile2dslr stylize``: MPSE phase 2 on photos, feed-forward or per-image optimisation."""

from pathlib import Path
from typing import Literal, Optional

import torch

from datamodules.io import read_image
from lightning_modules.style_optimization import optimize_style

from ..checkpoints import load_phase
from ..devices import Precision, pick_autocast_dtype, pick_device
from ..errors import UserError, WeightsError
from ..tiling import TiledEnhancer
from .enhance import enhance, pending_outputs, process_images

__all__ = ["stylize"]


def stylize(
    input: str,
    output: str,
    *,
    ckpt: str,
    mode: Literal["feedforward", "optimize"] = "feedforward",
    reference: Optional[str] = None,
    gallery: Optional[str] = None,
    recommender: Optional[str] = None,
    steps: int = 200,
    lr: float = 0.004,
    working_side: int = 768,
    style_weight: Optional[float] = None,
    matting_weight: Optional[float] = None,
    tile: int = 512,
    precision: Precision = "auto",
    device: str = "auto",
    overwrite: bool = False,
    jpeg_quality: int = 95,
) -> int:
    """Refine photos with a phase-2 (semantic style refinement) checkpoint.

    ``feedforward`` runs the trained refiner once, tiled, at any size (the same as
    ``mobile2dslr enhance``). ``optimize`` is the thesis's per-image mode: the phase-1
    output of each photo is restyled after a reference by optimising the image and the
    Λ head alternately at ``working_side``, then the colour change is carried to full
    size by guided upsampling. The reference is ``--reference`` for every photo, or each
    photo's best match in ``--gallery`` (ranked by ``--recommender``, a
    ReferenceRecommender checkpoint, or by frozen VGG-16 distance without one).

    Outputs keep the input's name and format, are written atomically, never over an
    input; existing outputs are skipped; a bad file is reported in one line.

    Args:
        input: an image file or a folder of images.
        output: output folder (or an output file when ``input`` is one file).
        ckpt: a SemanticStyleRefinement checkpoint (``configs/mpse/phase2_style.yaml``).
        mode: ``feedforward`` or ``optimize``.
        reference: optimize: the style reference for every photo.
        gallery: optimize: a folder of professional photos to pick each photo's reference from.
        recommender: optimize: the recommender checkpoint that ranks ``gallery``.
        steps: optimize: optimisation steps per photo (image and Λ head alternately).
        lr: optimize: Adam learning rate of the pixels (DPST: 1 in 0-255 units).
        style_weight: optimize: override the checkpoint's style weight Γ (lower keeps
            the photo more photographic; DPST's ratio is 100).
        matting_weight: optimize: override the checkpoint's Matting Laplacian weight λ.
        working_side: optimize: long side of the working resolution.
        tile: tile side for the networks at full size.
        precision: ``auto``, ``fp32`` or ``bf16`` for the networks (the optimisation runs in fp32).
        device: ``auto``, ``cpu``, ``cuda``...
        overwrite: replace existing outputs.
        jpeg_quality: quality of JPEG outputs.

    Returns:
        0 when every image was written or skipped, 1 when any failed.
    """
    if mode == "feedforward":
        return enhance(input, output, ckpt=ckpt, tile=tile, precision=precision, device=device,
                       overwrite=overwrite, jpeg_quality=jpeg_quality)
    if (reference is None) == (gallery is None):
        raise UserError("--mode optimize needs exactly one of --reference FILE or --gallery FOLDER")
    if steps < 1 or working_side < 16:
        raise UserError(f"--steps must be >= 1 and --working_side >= 16, got {steps} and {working_side}")
    todo, skipped = pending_outputs(input, output, overwrite)
    if not todo:
        return 0
    module = load_phase(ckpt)
    if not hasattr(module, "objective") or not hasattr(module, "content"):
        raise WeightsError(f"{ckpt}: a {type(module).__name__} checkpoint cannot optimise style; pass a phase-2 checkpoint")
    for name, value in (("style", style_weight), ("matting", matting_weight)):
        if value is not None:
            module.objective.weights[name] = value
    torch_device = pick_device(device)
    module = module.to(torch_device).eval()
    phase1 = TiledEnhancer(module.content_generator, tile=tile, autocast_dtype=pick_autocast_dtype(precision, torch_device))
    index = None
    if gallery is not None:
        from ..gallery_index import GalleryIndex  # VGG-16 and the index only when a gallery is used

        index = GalleryIndex(gallery, recommender)
    fixed = _tensor(Path(reference), torch_device) if reference is not None else None
    def restyle(image: torch.Tensor, source: Path) -> torch.Tensor:
        with torch.no_grad():
            content = phase1(image).clamp(0, 1) if bool(module.has_content_generator) else image
        if fixed is not None:
            style = fixed
        else:
            best = index.recommend(source, 1)
            if not best:
                raise UserError(f"{gallery}: no usable reference in the gallery")
            style = _tensor(best[0][0], torch_device)
        return optimize_style(content, style, module.objective, module.lambda_head, steps=steps, lr=lr,
                              working_side=working_side)

    print(f"optimizing {len(todo)} image(s) on {torch_device}, {steps} steps at long side {working_side}"
          + (f"; skipping {skipped} done" if skipped else ""))
    return process_images(todo, restyle, torch_device, output, jpeg_quality)


def _tensor(path: Path, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].to(device)
