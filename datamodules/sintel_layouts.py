"""MPI Sintel intrinsic layouts: find the (image, albedo[, shading]) frames and split them.

Three layouts are read (``auto`` tries them in this order):

- ``official``: ``<root>/training/{clean,final}/<scene>/frame_XXXX.png`` with
  ``<root>/training/albedo/<scene>/frame_XXXX.png`` and optionally
  ``<root>/training/shading/...``; ``root`` may also be ``<root>/training``.
- ``mpi_main``: flat ``<root>/MPI-main-{clean,final,albedo,shading}/<scene>_frame_XXXX.png``.
- ``numbered``: one folder of ``imageNNNN.png``, ``gt_albedoNNNN.png`` and optionally
  ``gt_shadingNNNN.png`` (no scene names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
from pytorch_lightning.utilities import rank_zero_warn

from datamodules.datasets import hold_out
from datamodules.io import find_images, natural_key
from mobile2dslr.errors import DatasetLayoutError, UserError

Layout = Literal["auto", "official", "mpi_main", "numbered"]
PassName = Literal["clean", "final"]
LAYOUTS: tuple[str, ...] = ("official", "mpi_main", "numbered")
#: The layouts, as error messages state them.
EXPECTED_LAYOUTS = (
    "expected one of: official <root>/training/{clean,final}/<scene>/frame_XXXX.png with "
    "<root>/training/albedo/<scene>/frame_XXXX.png (shading/ optional); mpi_main "
    "<root>/MPI-main-{clean,final}/<scene>_frame_XXXX.png with <root>/MPI-main-albedo/ (MPI-main-shading/ "
    "optional); numbered <root>/imageNNNN.png with <root>/gt_albedoNNNN.png (gt_shadingNNNN.png optional)"
)
_NUMBERED = re.compile(r"^(image|gt_albedo|gt_shading)(\d+)$", re.IGNORECASE)
#: A map: a file read lazily, or an array already in memory (float32 HxWx3).
MapSource = Union[Path, np.ndarray]


@dataclass(frozen=True, eq=False)
class IntrinsicFrame:
    """One frame: its rendered image, albedo, optional shading, name and scene.

    Attributes:
        image: The rendered image (clean or final pass).
        albedo: Its albedo (reflectance).
        shading: Its shading, or ``None`` to derive it from image and albedo.
        name: Unique name: ``<scene>/frame_XXXX``, or ``NNNN`` for the numbered layout.
        scene: The scene, or ``None`` where the layout names none.
    """

    image: MapSource
    albedo: MapSource
    shading: Optional[MapSource]
    name: str
    scene: Optional[str]

    def files(self) -> list[Path]:
        """The frame's files (empty for frames held in memory)."""
        return [m for m in (self.image, self.albedo, self.shading) if isinstance(m, Path)]


def official_base(root: Path) -> Optional[Path]:
    """``root/training`` or ``root``, whichever holds ``albedo/`` and a render pass folder."""
    for base in (root / "training", root):
        if (base / "albedo").is_dir() and any((base / name).is_dir() for name in ("clean", "final")):
            return base
    return None


def detect_layout(root: Path, layout: str) -> str:
    """The layout of ``root``: ``layout`` itself if present, or the first found for ``auto``.

    Raises:
        DatasetLayoutError: ``root`` is missing or holds no (or not the forced) layout.
    """
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: Sintel dataset folder not found ({EXPECTED_LAYOUTS})")
    present = {
        "official": lambda: official_base(root) is not None,
        "mpi_main": lambda: (root / "MPI-main-albedo").is_dir(),
        "numbered": lambda: any(_numbered_id(p, "image") for p in find_images(root, recursive=False)),
    }
    for candidate in LAYOUTS if layout == "auto" else (layout,):
        if present[candidate]():
            return candidate
    found = "no Sintel layout found" if layout == "auto" else f"{layout} layout not found"
    raise DatasetLayoutError(f"{root}: {found} ({EXPECTED_LAYOUTS})")


def find_frames(root: Path, layout: str, pass_name: str) -> list[IntrinsicFrame]:
    """Every frame of a detected layout that has an albedo, naturally sorted by name.

    Frames without an albedo are skipped with one warning.

    Raises:
        DatasetLayoutError: the render pass folder is missing, two files share a name,
            or no frame has an albedo.
    """
    if layout == "official":
        base = official_base(root)
        assert base is not None  # detect_layout found it
        folders = [base / pass_name, base / "albedo", base / "shading"]
    elif layout == "mpi_main":
        folders = [root / f"MPI-main-{name}" for name in (pass_name, "albedo", "shading")]
    else:
        folders = [root]
    if not folders[0].is_dir():
        raise DatasetLayoutError(
            f"{folders[0]}: render pass folder not found (pass_name={pass_name!r}; {EXPECTED_LAYOUTS})"
        )
    if layout == "numbered":
        images, albedos, shadings = (_numbered_files(root, kind) for kind in ("image", "gt_albedo", "gt_shading"))
    else:
        images, albedos, shadings = (_named_files(folder, layout) for folder in folders)
    missing = sorted(set(images) - set(albedos), key=natural_key)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        rank_zero_warn(f"{folders[0]}: skipping {len(missing)} frame(s) without albedo: {shown}")
    names = sorted(set(images) & set(albedos), key=natural_key)
    if not names:
        raise DatasetLayoutError(
            f"{folders[0]}: no frame with an albedo ({len(images)} images, {len(albedos)} albedos; {EXPECTED_LAYOUTS})"
        )
    return [
        IntrinsicFrame(images[n], albedos[n], shadings.get(n), n, n.split("/")[0] if layout != "numbered" else None)
        for n in names
    ]


def split_frames(
    frames: Sequence[IntrinsicFrame],
    val_scenes: Optional[list[str]],
    val_frames: Optional[list[str]],
    where: str,
) -> tuple[list[IntrinsicFrame], list[IntrinsicFrame]]:
    """Training and held-out frames, never sharing a scene.

    Named layouts hold out ``val_scenes`` (default: a deterministic, evenly spaced ~20 %
    of the sorted scenes, at least one); the numbered layout holds out ``val_frames``.

    Raises:
        UserError: the wrong list for the layout, ``val_frames`` missing for the numbered
            layout, unknown scenes/frames, or an empty split.
    """
    if frames[0].scene is not None:
        if val_frames is not None:
            raise UserError(f"{where}: val_frames is for the numbered layout; it names scenes: set --data.val_scenes")
        scenes = sorted({frame.scene for frame in frames}, key=natural_key)
        if val_scenes is None:
            held = set(hold_out(scenes, 0.2, Path(where))[1])
        else:
            _check_known(val_scenes, scenes, "val_scenes", "scenes", where)
            held = set(val_scenes)
        train = [frame for frame in frames if frame.scene not in held]
        val = [frame for frame in frames if frame.scene in held]
        chosen = f"val_scenes={sorted(held, key=natural_key)}"
    else:
        if val_scenes is not None:
            raise UserError(f"{where}: this layout has no scene names, so no val_scenes: set --data.val_frames")
        ids = [frame.name for frame in frames]
        if val_frames is None:
            raise UserError(
                f"{where}: set --data.val_frames (this layout has no scene names), e.g. [{ids[-1]!r}]; "
                f"frames: {', '.join(ids)}"
            )
        _check_known(val_frames, ids, "val_frames", "frames", where)
        train = [frame for frame in frames if not any(_same_id(frame.name, held) for held in val_frames)]
        val = [frame for frame in frames if any(_same_id(frame.name, held) for held in val_frames)]
        chosen = f"val_frames={list(val_frames)}"
    if not train or not val:
        raise UserError(f"{where}: {chosen} leaves no {'training' if not train else 'validation'} frame")
    return train, val


def _check_known(wanted: Sequence[str], valid: Sequence[str], arg: str, what: str, where: str) -> None:
    unknown = [w for w in wanted if not any(_same_id(str(w), v) for v in valid)]
    if unknown:
        raise UserError(f"{where}: unknown {arg} {unknown}; valid {what}: {', '.join(valid)}")


def _same_id(given: str, frame_id: str) -> bool:
    """``"11"`` names frame ``"0011"``: YAML and shells drop leading zeros."""
    given = str(given)
    return given == frame_id or (given.isdigit() and frame_id.isdigit() and int(given) == int(frame_id))


def _numbered_id(path: Path, kind: str) -> Optional[str]:
    match = _NUMBERED.match(path.stem)
    return match.group(2) if match and match.group(1).lower() == kind else None


def _numbered_files(root: Path, kind: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in find_images(root, recursive=False):
        frame_id = _numbered_id(path, kind)
        if frame_id is not None:
            _add_unique(files, frame_id, path)
    return files


def _named_files(folder: Path, layout: str) -> dict[str, Path]:
    """Files of one map folder by frame name (``<scene>/frame_XXXX``); missing folder: none."""
    files: dict[str, Path] = {}
    if not folder.is_dir():
        return files
    if layout == "official":
        scenes = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        for scene in sorted(scenes, key=lambda p: natural_key(p.name)):
            for path in find_images(scene, recursive=False):
                _add_unique(files, f"{scene.name}/{path.stem}", path)
        return files
    for path in find_images(folder, recursive=False):
        scene, separator, frame = path.stem.rpartition("_frame_")
        _add_unique(files, f"{scene}/frame_{frame}" if separator else path.stem, path)
    return files


def _add_unique(files: dict[str, Path], name: str, path: Path) -> None:
    if name in files:
        raise DatasetLayoutError(f"{path}: two files are frame {name!r} ({files[name].name}); keep one")
    files[name] = path
