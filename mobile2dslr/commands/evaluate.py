"""``mobile2dslr evaluate``: PSNR/SSIM/LPIPS of checkpoints and classic baselines on a paired dataset."""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from tqdm import tqdm

from callbacks.enhancement_report import psnr_ssim
from callbacks.image_grid import side_by_side
from datamodules.datasets import ImagePair
from datamodules.io import read_image, write_image
from datamodules.paired import Layout, PairedDataModule
from lightning_modules.losses.lpips import LPIPS, MIN_SIDE
from lightning_modules.nets.dped_generator import equalize_luminance
from lightning_modules.nets.mdie_enhancer import MDIEEnhancer
from lightning_modules.phase2_style import SemanticStyleRefinement
from lightning_modules.phase3_postprocess import gamma_correct

from ..checkpoints import checkpoint_class, load_enhancer
from ..devices import Precision, pick_autocast_dtype, pick_device
from ..errors import UserError
from ..evaluation_report import METRICS, means_table, write_report
from ..tiling import TiledEnhancer

__all__ = ["Evaluation", "Method", "baseline_methods", "checkpoint_methods", "evaluate", "evaluate_methods"]

#: An enhancement method: (1, 3, H, W) RGB in [0, 1] → (1, 3, H, W) RGB in [0, 1].
Method = Callable[[torch.Tensor], torch.Tensor]


def baseline_methods() -> dict[str, Method]:
    """The do-nothing input and the classic baselines every evaluation scores.

    ``he`` equalises the histogram of luminance (Y of YCbCr) and keeps the chroma, as
    phase 1's equalised input; ``gamma`` is ``x ** (1/2.2)``; ``he+gamma`` both.
    """
    return {
        "input": lambda image: image,
        "he": equalize_luminance,
        "gamma": gamma_correct,
        "he+gamma": lambda image: gamma_correct(equalize_luminance(image)),
    }


def _parse_checkpoint(spec: str) -> tuple[Optional[str], Path]:
    # A Lightning checkpoint name may hold "=" (epoch=3-step=100.ckpt): an existing path wins.
    if Path(spec).is_file() or "=" not in spec:
        return None, Path(spec)
    name, _, path = spec.partition("=")
    if not name or "/" in name or not Path(path).is_file():
        raise UserError(f"{spec}: checkpoint not found (give PATH or NAME=PATH)")
    return name, Path(path)


def _default_name(path: Path, taken: set) -> str:
    """The checkpoint's file stem; for generic stems (last, epoch=...) the run folder's name."""
    name = path.stem
    if name in ("last", "best", "model") or name.startswith(("epoch=", "step=")):
        folders = [p.name for p in path.resolve().parents if p.name and p.name != "checkpoints"]
        name = folders[0] if folders else name
    unique, count = name, 2
    while unique in taken:
        unique, count = f"{name}-{count}", count + 1
    return unique


def checkpoint_methods(
    ckpts: Sequence[str], device: torch.device, tile: int = 512, precision: Precision = "fp32", taken: Sequence[str] = ()
) -> dict[str, Method]:
    """A method per checkpoint (``PATH`` or ``NAME=PATH``), each a phase's enhancer run tiled.

    Nets with strided convolutions run tiled on their stride grid when they declare it (MDIE,
    scored in both inference modes: ``NAME`` with the checkpoint's, ``NAME+<other>``), else whole.

    Raises:
        UserError: a missing or unusable checkpoint, or a name used twice (one line).
    """
    methods: dict[str, Method] = {}
    dtype = pick_autocast_dtype(precision, device)
    for spec in ckpts:
        name, path = _parse_checkpoint(spec)
        used = set(taken) | set(methods)
        if name is None:
            name = _default_name(path, used)
        elif name in used:
            raise UserError(f"{spec}: the method name {name!r} is taken; choose another NAME=PATH")
        net = load_enhancer(str(path)).to(device)
        methods[name] = _tiled_or_whole(net, device, tile, dtype)
        if isinstance(net, MDIEEnhancer):  # MDIE: score the other inference mode too
            other = "sequential" if net.mode == "all_high" else "all_high"
            methods[f"{name}+{other}"] = _tiled_or_whole(MDIEEnhancer(net.decomposer, net.generator, net.composer, other), device, tile, dtype)
        if issubclass(checkpoint_class(str(path)), SemanticStyleRefinement):
            # A phase-2 checkpoint also carries phase 3: score the whole MPSE chain too.
            from ..pipeline import MPSEPipeline

            methods[f"{name}+phase3"] = MPSEPipeline(str(path), device, autocast_dtype=dtype, tile=tile, postprocess="on")
    return methods


def _tiled_or_whole(net: torch.nn.Module, device: torch.device, tile: int, dtype: Optional[torch.dtype]) -> Method:
    try:
        return TiledEnhancer(net, tile=tile, autocast_dtype=dtype, memory_format="auto")
    except ValueError:  # strided convs without a declared stride grid: run the whole image at once
        return _whole_image(net, device, dtype)


def _whole_image(net: torch.nn.Module, device: torch.device, dtype: Optional[torch.dtype]) -> Method:
    def run(image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return net(image).float()

    return run


@dataclass
class Evaluation:
    """Scores of an evaluation: ``rows`` per (method, image), ``means`` per method, skipped images."""

    rows: list[dict] = field(default_factory=list)
    means: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _centre(image: torch.Tensor, crop: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    if crop <= 0:
        return image
    top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
    return image[..., top : top + crop, left : left + crop]


def _load_pair(pair: ImagePair, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lq, hq = read_image(pair.lq), read_image(pair.hq)
    # As PairedDataModule: pairs of different sizes are cropped to their common size (top-left).
    height, width = min(lq.shape[0], hq.shape[0]), min(lq.shape[1], hq.shape[1])
    if min(height, width) < MIN_SIDE:
        raise UserError(f"{pair.lq}: {width}x{height} px is too small to score (LPIPS needs at least {MIN_SIDE}x{MIN_SIDE})")
    lq, hq = (torch.from_numpy(x[:height, :width]).permute(2, 0, 1)[None].to(device) for x in (lq, hq))
    return lq, hq


def _score_pair(pair, methods, metric, device, crop) -> tuple[list[dict], list[torch.Tensor]]:
    lq, hq = _load_pair(pair, device)
    target = metric.features(hq)
    rows, crops = [], [_centre(lq, crop)[0]]
    for name, method in methods.items():
        output = method(lq)
        if not isinstance(output, torch.Tensor) or output.shape != lq.shape:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise UserError(f"{pair.name}: method {name} returned {shape}, expected {tuple(lq.shape)}")
        output = output.float().clamp(0, 1)
        psnr, ssim = psnr_ssim(output[0], hq[0])
        rows.append({"method": name, "image": pair.name, "psnr": psnr, "ssim": ssim, "lpips": float(metric.distance_to(output, target))})
        if name != "input":
            crops.append(_centre(output, crop)[0])
    return rows, crops + [_centre(hq, crop)[0]]


def evaluate_methods(
    pairs: Sequence[ImagePair],
    methods: dict[str, Method],
    out: str,
    crop: int = 256,
    *,
    device: "torch.device | str" = "cpu",
    metric: Optional[LPIPS] = None,
    notes: Sequence[str] = (),
    progress: bool = True,
) -> Evaluation:
    """Score every method on every pair and write the report files into ``out``.

    Metrics per image against the HQ twin, on RGB in [0, 1] (outputs clipped): PSNR
    (data range 1), SSIM (torchmetrics' Gaussian 11x11, σ 1.5) and LPIPS (VGG, v0.1);
    then the mean per method over the images every method scored. A pair that cannot be
    read, or on which any method fails, is reported and skipped for every method, so
    the means compare the same images.

    Writes ``metrics.csv`` (method,image,psnr,ssim,lpips), ``means.csv``, ``report.md``,
    ``report.html``, ``bar_chart.png`` and ``side_by_side/<image>.png`` (centre crops of
    ``crop`` px: input | each method but ``input`` | target; ``crop <= 0`` keeps them whole).

    Args:
        pairs: the image pairs (``lq``, ``hq`` paths and a unique ``name``).
        methods: name → method; a later pipeline (e.g. phase 3) adds its own here.
        out: output folder (created).
        crop: side of the side-by-side centre crops.
        device: where images, methods' inputs and metrics go.
        metric: the LPIPS module (default: ImageNet LPIPS on ``device``).
        notes: lines for the report's header.
        progress: show a progress bar over the pairs.

    Raises:
        UserError: no pairs, or none could be scored.
    """
    if not pairs or not methods:
        raise UserError(f"evaluate: nothing to score ({len(pairs)} pair(s), {len(methods)} method(s))")
    device = torch.device(device)
    metric = (metric or LPIPS()).to(device)
    out_dir = Path(out)
    result, strips = Evaluation(), {}
    columns = ["input", *[name for name in methods if name != "input"], "target"]
    for pair in tqdm(pairs, unit="pair", disable=not progress):
        try:
            with torch.inference_mode():
                rows, crops = _score_pair(pair, methods, metric, device, crop)
            strip_path = Path("side_by_side") / f"{pair.name}.png"
            write_image(out_dir / strip_path, side_by_side(*crops).permute(1, 2, 0).numpy())
        except UserError as err:
            result.failures.append(str(err))
        except (RuntimeError, ValueError, MemoryError) as err:  # e.g. out of memory on a huge photo
            result.failures.append(f"{pair.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        else:
            result.rows.extend(rows)
            strips[pair.name] = strip_path.as_posix()
            continue
        tqdm.write(f"skipped: {result.failures[-1]}", file=sys.stderr)
    if not result.rows:
        raise UserError(f"evaluate: none of the {len(pairs)} pair(s) could be scored; first: {result.failures[0]}")
    for name in methods:
        scored = [row for row in result.rows if row["method"] == name]
        result.means[name] = {key: sum(row[key] for row in scored) / len(scored) for key, _, _ in METRICS}
        result.means[name]["images"] = len(scored)
    write_report(out_dir, result.rows, result.means, columns, strips, result.failures, notes=notes)
    return result


def _check_output(data: Path, out: Path) -> None:
    data, target = data.resolve(), out.resolve()
    if target == data or data in target.parents:
        raise UserError(f"{out}: the output folder is inside the dataset {data}; evaluate never writes there, choose another")


def evaluate(
    data: str,
    out: str,
    *,
    ckpt: Union[list[str], str, None] = None,
    layout: Layout = "auto",
    lq_dir: str = "lq",
    hq_dir: str = "hq",
    lq_suffix: str = "_real",
    hq_suffix: str = "_mean",
    phone: str = "iphone",
    max_images: Optional[int] = None,
    crop: int = 256,
    tile: int = 512,
    device: str = "auto",
    precision: Precision = "fp32",
) -> int:
    """Score checkpoints against the input and classic baselines on a paired dataset.

    Every pair is scored with PSNR and SSIM (RGB in [0, 1], data range 1) and LPIPS
    (VGG-16, v0.1; lower is closer), per image then the mean. Methods: ``input`` (the
    phone photo as it is), ``he`` (histogram-equalised luminance), ``gamma``
    (``x ** (1/2.2)``), ``he+gamma``, and each checkpoint. Writes ``metrics.csv``,
    ``means.csv``, ``report.md``, ``report.html``, ``bar_chart.png`` and
    ``side_by_side/<image>.png`` to ``out`` and prints the means. An unreadable image is
    reported in one line and skipped; the exit status is then 1.

    Args:
        data: paired dataset folder, in a layout PairedDataModule reads: official DPED
            (its ``test_data/patches``, else its training pairs), two folders with the
            same file names, or one folder of suffix pairs.
        out: output folder (never inside ``data``).
        ckpt: phase checkpoints to score (MPSE or MDIE), each ``PATH`` or ``NAME=PATH``;
            a method is named after the file (or, for ``last.ckpt``, its run folder).
            Several: ``--ckpt A.ckpt --ckpt+ B.ckpt`` or ``--ckpt [A.ckpt,B.ckpt]``.
        layout: ``auto``, ``dped``, ``folders`` or ``suffix``.
        lq_dir: folders layout: the phone (LQ) folder under ``data``.
        hq_dir: folders layout: the DSLR (HQ) folder under ``data``.
        lq_suffix: suffix layout: LQ file-name suffix.
        hq_suffix: suffix layout: HQ file-name suffix.
        phone: DPED phone folder (iphone, blackberry, sony).
        max_images: score only the first N pairs (natural name order).
        crop: side in px of the side-by-side centre crops (0: whole images).
        tile: tile side for checkpoints' nets (large photos run tiled).
        device: ``auto`` (a CUDA GPU when present), ``cpu``, ``cuda``, ``cuda:1``...
        precision: checkpoints' precision, ``fp32``, ``bf16`` or ``auto``; metrics are fp32.

    Returns:
        0 when every pair was scored, 1 when any was skipped.
    """
    _check_output(Path(data), Path(out))
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be at least 1, got {max_images}")
    module = PairedDataModule(data, layout=layout, phone=phone, lq_dir=lq_dir, hq_dir=hq_dir, lq_suffix=lq_suffix, hq_suffix=hq_suffix)
    pairs = module.all_pairs()[:max_images]
    torch_device = pick_device(device)
    methods = baseline_methods()
    specs = [ckpt] if isinstance(ckpt, str) else list(ckpt or [])
    methods.update(checkpoint_methods(specs, torch_device, tile, precision, taken=[*methods, "target"]))
    print(f"evaluating {len(methods)} method(s) on {len(pairs)} pair(s) from {data} on {torch_device}")
    notes = [
        f"Data: `{data}` ({len(pairs)} pairs). Methods: {', '.join(methods)}.",
        "Scores against the DSLR (HQ) target: RGB in [0, 1], data range 1, per image then the mean. "
        "PSNR and SSIM: higher is better; LPIPS (VGG-16, v0.1): lower is better. Best in bold.",
    ]
    result = evaluate_methods(pairs, methods, out, crop, device=torch_device, notes=notes)
    print("\n".join(means_table(result.means, bold="")))
    print(f"report written to {Path(out) / 'report.md'} (and report.html, metrics.csv, bar_chart.png)")
    if result.failures:
        print(f"{len(result.failures)} pair(s) skipped:", file=sys.stderr)
        for line in result.failures:
            print(f"  {line}", file=sys.stderr)
    return 1 if result.failures else 0
