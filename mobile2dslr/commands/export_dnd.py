"""``mobile2dslr export-dnd``: denoise DND's benchmark boxes into an uploadable submission."""

from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from tqdm import tqdm

from datamodules.dnd import DNDBoxDataset
from datamodules.dnd_format import DND_LAYOUT, find_dnd_images, read_dnd_boxes, write_dnd_submission
from datamodules.transforms import to_tensor

from ..devices import Precision, pick_autocast_dtype, pick_device
from ..errors import UserError

__all__ = ["export_dnd", "export_submission", "benchmark_boxes"]

#: DND's site: results are uploaded there (an account is needed) and scored against the hidden ground truth.
DND_SITE = "https://noise.visinf.tu-darmstadt.de"


def benchmark_boxes(root: str) -> DNDBoxDataset:
    """The benchmark boxes of a DND root (nothing decoded yet).

    Raises:
        UserError: ``root`` is not a DND root or its ``info.mat`` is missing or unreadable.
    """
    folder = Path(root)
    images = find_dnd_images(folder)
    if not images:
        raise UserError(f"{folder}: not a DND folder; expected {DND_LAYOUT}")
    info = folder / "info.mat"
    if not info.is_file():
        raise UserError(f"{info}: not found; expected {DND_LAYOUT}")
    boxes = read_dnd_boxes(info)
    missing = [path.name for path in images if int(path.stem) > len(boxes)]
    if missing:
        raise UserError(f"{info}: holds boxes for {len(boxes)} images, but there is {missing[0]}")
    return DNDBoxDataset([(path, int(path.stem), boxes[int(path.stem) - 1]) for path in images])


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise UserError(f"{output}: exists and is not a folder; choose an output folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UserError(f"{output}: folder is not empty (pass --overwrite to write the submission there anyway)")


def export_submission(
    root: str,
    output: str,
    method: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device = torch.device("cpu"),
    autocast_dtype: Optional[torch.dtype] = None,
    overwrite: bool = False,
) -> Path:
    """Run ``method`` on every benchmark box and write the kit's files, one image at a time.

    Args:
        root: The DND folder (``images_srgb/`` and ``info.mat``).
        output: The submission folder; per-box files go there, bundles into ``bundled/``.
        method: Maps a noisy box (1, 3, h, w) in [0, 1] on ``device`` to its result, the
            same size; results are clamped to [0, 1].
        device: Where the boxes go.
        autocast_dtype: Run ``method`` under ``torch.autocast`` with this dtype (None: fp32).
        overwrite: Write into a non-empty folder, replacing earlier files.

    Returns:
        The ``bundled/`` folder.

    Raises:
        UserError: not a DND root, an unreadable ``.mat``, a non-empty output folder
            (without ``overwrite``) or a result of the wrong size.
    """
    boxes = benchmark_boxes(root)
    out = Path(output)
    _check_output(out, overwrite)
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    crops: dict[tuple[int, int], np.ndarray] = {}
    with torch.no_grad(), tqdm(total=len(boxes), unit="box") as bar:
        for index, (number, box) in enumerate(boxes.keys):
            noisy = boxes.crop(index)
            with autocast:
                result = method(to_tensor(noisy)[None].to(device))
            if tuple(result.shape) != (1, 3, *noisy.shape[:2]):
                raise UserError(
                    f"the enhancer returned shape {tuple(result.shape)} for box {number:04d}_{box:02d} "
                    f"(h, w = {noisy.shape[:2]}); DND needs results of the box's size"
                )
            crops[(number, box)] = result[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            bar.update()
            last_of_image = index + 1 == len(boxes) or boxes.keys[index + 1][0] != number
            if last_of_image:  # write each image's files at once: 50 images of crops would be 3 GB
                write_dnd_submission(out, crops, overwrite=True)  # the folder was checked above
                crops = {}
    return out / "bundled"


def export_dnd(
    root: str,
    output: str,
    *,
    ckpt: str,
    device: str = "auto",
    precision: Precision = "fp32",
    overwrite: bool = False,
) -> int:
    """Denoise the DND sRGB benchmark with a checkpoint and write the files to upload.

    Each of the 20 boxes of each image (512x512 in DND) goes through the checkpoint's
    enhancer whole; the results are written as the official submission kit does
    (``OUTPUT/NNNN_BB.mat`` with ``Idenoised_crop``, then ``OUTPUT/bundled/NNNN.mat``
    with ``Idenoised``, ``israw`` and ``eval_version``). Upload the files in
    ``OUTPUT/bundled/`` at the DND site (sRGB track). Scores come only from there:
    DND's ground truth is not public.

    Args:
        root: the DND folder: ``images_srgb/0001.mat … 0050.mat`` and ``info.mat``.
        output: the submission folder to write (must be empty unless ``--overwrite``).
        ckpt: checkpoint of a phase that enhances images (``mobile2dslr fit`` or ``import-dped``).
        device: ``auto`` (a CUDA GPU when present), ``cpu``, ``cuda``, ``cuda:1``...
        precision: ``fp32``, ``bf16``, or ``auto`` (bf16 where the device computes it fast).
        overwrite: write into a non-empty output folder, replacing earlier files.

    Returns:
        0 when the submission is written.
    """
    benchmark_boxes(root)  # bad input fails before the checkpoint loads
    _check_output(Path(output), overwrite)
    from ..checkpoints import load_enhancer  # the phases' modules load only when there is work

    torch_device = pick_device(device)
    net = load_enhancer(ckpt).to(torch_device)
    bundled = export_submission(root, output, net, torch_device, pick_autocast_dtype(precision, torch_device), overwrite)
    count = len(list(bundled.glob("*.mat")))
    print(f"wrote the DND submission of {count} image(s) to {bundled}")
    print(f"to submit: log in at {DND_SITE}, choose the sRGB track and upload the .mat files in {bundled}")
    return 0
