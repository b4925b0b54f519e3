"""``mobile2dslr enhance``: enhance a photo or a folder of photos with a trained checkpoint."""

import sys
import time
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from tqdm import tqdm

from datamodules.io import IMAGE_EXTENSIONS, RAW_EXTENSIONS, find_images, read_image, stored_bit_depth, write_image

from ..devices import Precision, pick_autocast_dtype, pick_device
from ..errors import UserError
from ..tiling import MemoryFormat

Switch = Literal["auto", "on", "off"]

__all__ = ["enhance", "plan_outputs", "pending_outputs", "process_images"]

#: Smallest side enhance accepts: instance norm needs more than one pixel.
MIN_SIDE = 2


def _output_name(relative: Path) -> Path:
    # Keep the name and format; camera RAW cannot be written, so it becomes a 16-bit TIFF.
    return relative.with_suffix(".tif") if relative.suffix.lower() in RAW_EXTENSIONS else relative


def plan_outputs(source: Path, target: Path) -> list[tuple[Path, Path]]:
    """Pair every input image with its output path; refuse any plan that writes over an input.

    Args:
        source: an image file or a folder (searched recursively).
        target: the output folder, or an output file when ``source`` is a file and
            ``target`` has an image extension.

    Raises:
        UserError: missing input, no images, or an output that would replace an input.
    """
    if source.is_file():
        output = target if target.suffix.lower() in IMAGE_EXTENSIONS else target / _output_name(Path(source.name))
        pairs = [(source, output)]
    elif source.is_dir():
        inner = target.resolve() if target.resolve() != source.resolve() else None
        # An output folder inside the input folder holds earlier outputs, not inputs.
        images = [p for p in find_images(source) if inner is None or inner not in p.resolve().parents]
        if not images:
            raise UserError(f"{source}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        pairs = [(image, target / _output_name(image.relative_to(source))) for image in images]
    else:
        raise UserError(f"{source}: no such file or folder")
    inputs = {p.resolve() for p, _ in pairs}
    clashes = [out for _, out in pairs if out.resolve() in inputs]
    if clashes:
        raise UserError(
            f"{target}: writing there would replace the input {clashes[0]} "
            f"({len(clashes)} file(s)); choose another output folder"
        )
    return pairs


def pending_outputs(input: str, output: str, overwrite: bool) -> tuple[list[tuple[Path, Path]], int]:
    """The (input, output) pairs still to do, and how many are skipped because they exist."""
    pairs = plan_outputs(Path(input), Path(output))
    todo = [(src, dst) for src, dst in pairs if overwrite or not dst.exists()]
    if not todo:
        print(f"nothing to do: all {len(pairs)} outputs exist in {output} (--overwrite to redo them)")
    return todo, len(pairs) - len(todo)


def enhance(
    input: str,
    output: str,
    *,
    ckpt: str,
    mode: Literal["feedforward", "optimize"] = "feedforward",
    inference: Optional[Literal["all_high", "sequential"]] = None,
    postprocess: Switch = "auto",
    gamma: Switch = "auto",
    equalize: bool = True,
    depth: int = 2,
    smooth: float = 0.01,
    reference: Optional[str] = None,
    gallery: Optional[str] = None,
    recommender: Optional[str] = None,
    steps: int = 200,
    lr: float = 0.004,
    working_side: int = 768,
    style_weight: Optional[float] = None,
    matting_weight: Optional[float] = None,
    tile: int = 512,
    halo: Optional[int] = None,
    precision: Precision = "auto",
    memory_format: MemoryFormat = "auto",
    compile: bool = False,
    device: str = "auto",
    max_untiled_megapixels: float = 4.0,
    overwrite: bool = False,
    jpeg_quality: int = 95,
) -> int:
    """Enhance a photo, or every photo in a folder, with the chain of a checkpoint.

    MPSE: phase 1 (a phase-1 checkpoint) or the phase-2 refiner (a phase-2
    checkpoint; ``--mode optimize`` restyles each photo after a reference instead), then
    phase 3 (regional histogram equalisation + gamma; on by default for phase-2
    checkpoints). MDIE: decomposition F, the StarGAN asked for high quality, composition
    F' (``--inference``), then phase 3 when ``--postprocess on``. Any size is fine: large
    photos run as overlapping tiles with blended seams (instance-norm nets get whole-image
    statistics, so tiles match the untiled result). Outputs keep the input's relative path, name, format and bit depth (camera
    RAW becomes a 16-bit TIFF); each is written atomically, never over an input. Outputs
    that already exist are skipped, so an interrupted run resumes where it stopped. A
    file that cannot be read is reported in one line and the others go on; the exit
    status is 1 when any file failed.

    Args:
        input: an image file or a folder of images (searched recursively; jpg, png,
            tiff, webp, bmp, camera RAW; 8/16-bit, grayscale, RGBA, EXIF orientation).
        output: output folder (or an output file when ``input`` is one file).
        ckpt: checkpoint of a phase that enhances images (``mobile2dslr fit`` of MPSE phase 1
            or 2 or of joint MDIE, or ``mobile2dslr import-dped``).
        mode: phase 2: ``feedforward`` (one pass of the refiner) or ``optimize`` (per
            photo, the thesis's mode; needs ``--reference`` or ``--gallery``).
        inference: MDIE: ``all_high`` (every attribute high at once, as the thesis) or
            ``sequential`` (colour, texture, noise passes); default: the checkpoint's.
        postprocess: phase 3: ``auto`` (on for phase-2 checkpoints), ``on`` or ``off``.
        gamma: phase 3's gamma 1/2.2: ``auto`` (dark photos only), ``on`` or ``off``.
        equalize: phase 3's per-region RMSHE of luminance.
        depth: RMSHE recursion depth (2^depth sub-histograms).
        smooth: phase 3: guided-filter radius of the luminance change, a fraction of the
            long side (region seams follow edges, no noise amplification; 0: exact RMSHE).
        reference: a style reference for every photo (optimize; with phase 3 it also sets
            the per-region strengths from the Λ head).
        gallery: a folder of professional photos: each photo's best match is its reference.
        recommender: a ReferenceRecommender checkpoint that ranks ``gallery``.
        steps: optimize: steps per photo (image and Λ head alternately).
        lr: optimize: Adam learning rate of the pixels.
        working_side: optimize: long side of the working resolution.
        style_weight: optimize: override the checkpoint's style weight (lower: more photographic).
        matting_weight: optimize: override the checkpoint's Matting Laplacian weight.
        tile: side of a tile's core in pixels; larger photos are tiled.
        halo: context pixels around each tile (default: the net's receptive field + blend).
        precision: ``auto`` (bf16 where the device computes it fast, else fp32), ``fp32``
            or ``bf16``, for the networks.
        memory_format: ``auto`` (a crop of the first photo runs in NCHW and NHWC and the
            faster is kept), ``contiguous`` or ``channels_last``.
        compile: run the networks through ``torch.compile`` (faster on big jobs; the first
            tiles wait for the compiler, about 30 s on a 2-core CPU).
        device: ``auto`` (a CUDA GPU when present), ``cpu``, ``cuda``, ``cuda:1``...
        max_untiled_megapixels: instance-norm nets run untiled up to this size (exact,
            and cheaper than tiling with whole-image statistics).
        overwrite: replace outputs that already exist instead of skipping them.
        jpeg_quality: quality of JPEG outputs.

    Returns:
        0 when every image was written or skipped, 1 when any failed.
    """
    todo, skipped = pending_outputs(input, output, overwrite)
    if not todo:
        return 0
    from ..pipeline import MPSEPipeline  # the phases' modules load only when there is work

    torch_device = pick_device(device)
    pipeline = MPSEPipeline(
        ckpt, torch_device, autocast_dtype=pick_autocast_dtype(precision, torch_device), tile=tile, halo=halo,
        memory_format=memory_format, compile=compile,
        max_untiled_pixels=int(max_untiled_megapixels * 1e6), mode=mode, reference=reference, gallery=gallery,
        recommender=recommender, steps=steps, lr=lr, working_side=working_side, style_weight=style_weight,
        matting_weight=matting_weight, inference=inference, postprocess=postprocess, gamma=gamma, equalize=equalize, depth=depth, smooth=smooth,
    )
    print(f"enhancing {len(todo)} image(s): {pipeline.describe()}, with {ckpt}" + (f"; skipping {skipped} done" if skipped else ""))

    def run(tensor: torch.Tensor, source: Path) -> torch.Tensor:
        tiles = pipeline.tiles_for(*tensor.shape[-2:])
        with tqdm(total=tiles, unit="tile", leave=False, disable=tiles == 1) as bar:
            return pipeline(tensor, source, progress=lambda done: bar.update(done - bar.n))

    return process_images(todo, run, torch_device, output, jpeg_quality)


def process_images(
    todo: list[tuple[Path, Path]],
    process: Callable[[torch.Tensor, Path], torch.Tensor],
    device: torch.device,
    output: str,
    jpeg_quality: int = 95,
) -> int:
    """Read, process and write each (input, output) pair; a failing file never stops the rest.

    Args:
        todo: the pairs to do (from :func:`plan_outputs`, existing outputs removed).
        process: maps a (1, 3, H, W) image in [0, 1] on ``device`` and its source path to the result.
        device: where images go before ``process``.
        output: the output location, for the summary line.
        jpeg_quality: quality of JPEG outputs.

    Returns:
        0 when every image was written, 1 when any failed (each reported in one line).
    """
    failures: list[str] = []
    megapixels, started = 0.0, time.perf_counter()
    for src, dst in tqdm(todo, unit="img", disable=len(todo) == 1 and not sys.stderr.isatty()):
        try:
            image = read_image(src)
            if min(image.shape[:2]) < MIN_SIDE:
                raise UserError(f"{src}: {image.shape[1]}x{image.shape[0]} px is too small to enhance (at least {MIN_SIDE}x{MIN_SIDE})")
            result = process(torch.from_numpy(image).permute(2, 0, 1)[None].to(device), src)
            pixels = result[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            write_image(dst, pixels, bit_depth=stored_bit_depth(src) if dst.suffix.lower() in (".png", ".tif", ".tiff") else 8,
                        quality=jpeg_quality)
            megapixels += image.shape[0] * image.shape[1] / 1e6
        except UserError as err:
            failures.append(str(err))
            tqdm.write(f"skipped: {err}", file=sys.stderr)
        except OSError as err:  # disk full, read-only folder...
            failures.append(f"{dst}: cannot write ({err.strerror or err})")
            tqdm.write(f"failed: {failures[-1]}", file=sys.stderr)
        except (RuntimeError, MemoryError) as err:  # e.g. out of memory on a huge photo
            failures.append(f"{src}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} (try a smaller --tile)")
            tqdm.write(f"failed: {failures[-1]}", file=sys.stderr)
        except Exception as err:  # one odd file must not end a batch of thousands
            failures.append(f"{src}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            tqdm.write(f"failed: {failures[-1]}", file=sys.stderr)
    seconds = time.perf_counter() - started
    written = len(todo) - len(failures)
    rate = f", {megapixels / seconds:.3f} MP/s" if megapixels else ""
    print(f"wrote {written} image(s) to {output} in {seconds:.1f} s{rate}" + (f"; {len(failures)} failed:" if failures else ""))
    for line in failures:
        print(f"  {line}", file=sys.stderr)
    return 1 if failures else 0
