"""Real paired data (phone LQ, DSLR HQ): DPED, or generic folder/suffix pairs (LOL, PolyU, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from datamodules.datasets import (
    ImageDataset,
    ImagePair,
    PairedImageDataset,
    PairedPatchDataset,
    check_loader_args,
    drop_unreadable,
    hold_out,
    make_loader,
)
from datamodules.io import find_images, natural_key
from mobile2dslr.errors import DatasetLayoutError, UserError

Layout = Literal["auto", "dped", "folders", "suffix"]


class PairedDataModule(pl.LightningDataModule):
    """Paired phone/DSLR photos for supervised training (DPED's phase 1).

    Layouts (``layout="auto"`` picks the first one present, in this order):

    - ``dped`` (official DPED): ``<root>/<phone>/training_data/{<phone>,canon}/N.jpg``
      (or ``.png``) trains; ``<root>/<phone>/test_data/patches/{<phone>,canon}/N.*``
      validates and tests; ``<root>/<phone>/test_data/full_size_test_images/*`` (phone
      only) is predicted. ``root`` may also be ``<root>/<phone>`` itself.
    - ``folders``: ``<root>/<lq_dir>/...`` and ``<root>/<hq_dir>/...`` with the same
      relative file names (extensions may differ; sub-folders are searched). LOL:
      ``root=.../our485, lq_dir=low, hq_dir=high, val_root=.../eval15``.
    - ``suffix``: one folder (searched recursively) of ``<stem><lq_suffix>.<ext>`` and
      ``<stem><hq_suffix>.<ext>`` files (PolyU: ``*_real.JPG`` / ``*_mean.JPG``).

    Files without a twin are skipped with one warning. Pairs of different sizes are
    cropped to their common size from the top-left corner; they are not aligned, so use
    pre-aligned pairs. Without a validation set (no ``test_data/patches``, no
    ``val_root``), a deterministic ``val_fraction`` of the pairs, evenly spaced in
    natural name order, is held out. The test split is the validation split.

    Args:
        root: Dataset folder.
        layout: ``auto``, ``dped``, ``folders`` or ``suffix``.
        phone: DPED phone folder name (``iphone``, ``blackberry``, ``sony``).
        lq_dir: Folders layout: the LQ (phone) folder under ``root``.
        hq_dir: Folders layout: the HQ (DSLR) folder under ``root``.
        lq_suffix: Suffix layout: the LQ file-name suffix before the extension.
        hq_suffix: Suffix layout: the HQ file-name suffix before the extension.
        val_root: Separate validation set, read with the same layout (for DPED its
            ``test_data/patches``; for the others all of its pairs).
        val_fraction: Share of the pairs held out for validation when there is no
            validation set (at least one pair).
        predict_dir: Folder of LQ images to predict; by default DPED's full-size test
            images when present, else the validation LQ images.
        patch_size: Side of the square training patches; smaller images are
            reflect-padded.
        batch_size: Training batch size (every batch is full).
        val_batch_size: Validation/test/predict batch size (images of different sizes
            need 1).
        val_crop: Side of a centre crop of validation/test pairs; ``None`` keeps them whole.
        samples_per_epoch: Training patches per epoch.
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
    """

    def __init__(
        self,
        root: str,
        layout: Layout = "auto",
        phone: str = "iphone",
        lq_dir: str = "lq",
        hq_dir: str = "hq",
        lq_suffix: str = "_real",
        hq_suffix: str = "_mean",
        val_root: Optional[str] = None,
        val_fraction: float = 0.1,
        predict_dir: Optional[str] = None,
        patch_size: int = 100,
        batch_size: int = 50,
        val_batch_size: int = 1,
        val_crop: Optional[int] = None,
        samples_per_epoch: int = 10000,
        num_workers: int = 2,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"PairedDataModule: val_fraction must be in (0, 1), got {val_fraction}")
        check_loader_args(patch_size, batch_size, samples_per_epoch, "PairedDataModule")
        self.root = Path(root)
        self.layout = layout
        self.phone = phone
        self.lq_dir, self.hq_dir = lq_dir, hq_dir
        self.lq_suffix, self.hq_suffix = lq_suffix, hq_suffix
        self.val_root = Path(val_root) if val_root else None
        self.val_fraction = val_fraction
        self.predict_dir = Path(predict_dir) if predict_dir else None
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.val_crop = val_crop
        self.samples_per_epoch = samples_per_epoch
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_pairs: list[ImagePair] = []
        self.val_pairs: list[ImagePair] = []
        self.predict_paths: list[Path] = []
        self.predict_names: list[str] = []

    def setup(self, stage: Optional[str] = None) -> None:
        """Find the pairs of every split (once); raises :class:`DatasetLayoutError`."""
        if self.train_pairs:
            return
        layout = self._detect(self.root)
        if layout == "dped":
            base = self._dped_base(self.root)
            train = self._match_folders(base / "training_data" / self.phone, base / "training_data" / "canon")
            if self.val_root:
                patches = self._dped_base(self.val_root, "test_data/patches") / "test_data" / "patches"
            else:
                patches = base / "test_data" / "patches"
            if (patches / self.phone).is_dir() and (patches / "canon").is_dir():
                val = self._match_folders(patches / self.phone, patches / "canon")
            else:
                train, val = hold_out(train, self.val_fraction, self.root)
            full_size = base / "test_data" / "full_size_test_images"
        else:
            train = self._read_pairs(self.root, layout)
            if self.val_root:
                val = self._read_pairs(self.val_root, self._detect(self.val_root, expected=layout))
            else:
                train, val = hold_out(train, self.val_fraction, self.root)
            full_size = None
        val = drop_unreadable(val, lambda pair: (pair.lq, pair.hq), "validation")
        self.train_pairs, self.val_pairs = train, val
        if self.predict_dir is not None or (full_size is not None and full_size.is_dir()):
            folder = self.predict_dir or full_size
            self.predict_paths = find_images(folder)
            if not self.predict_paths:
                raise DatasetLayoutError(f"{folder}: no images to predict")
            self.predict_names = [p.relative_to(folder).with_suffix("").as_posix() for p in self.predict_paths]
        else:
            self.predict_paths = [pair.lq for pair in val]
            self.predict_names = [pair.name for pair in val]

    def training_pairs(self) -> list[ImagePair]:
        """The pairs training draws from, before any hold-out: DPED's ``training_data``, else all.

        Nothing is decoded. Raises :class:`DatasetLayoutError` when ``root`` holds no layout.
        """
        layout = self._detect(self.root)
        if layout != "dped":
            return self._read_pairs(self.root, layout)
        base = self._dped_base(self.root) / "training_data"
        return self._match_folders(base / self.phone, base / "canon")

    def all_pairs(self) -> list[ImagePair]:
        """Every pair the layout finds under ``root``, for evaluation: no split, nothing decoded.

        DPED: its ``test_data/patches`` when present, else the training pairs; the other
        layouts: all their pairs. Naturally sorted by name.

        Raises:
            DatasetLayoutError: ``root`` does not hold the layout (the message names it).
        """
        layout = self._detect(self.root)
        if layout != "dped":
            return self._read_pairs(self.root, layout)
        base = self._dped_base(self.root)
        patches = base / "test_data" / "patches"
        if (patches / self.phone).is_dir() and (patches / "canon").is_dir():
            return self._match_folders(patches / self.phone, patches / "canon")
        return self._match_folders(base / "training_data" / self.phone, base / "training_data" / "canon")

    def train_dataloader(self) -> DataLoader:
        """Random ``patch_size`` patches of random pairs, identical crop/flip for LQ and HQ."""
        dataset = PairedPatchDataset(self.train_pairs, self.patch_size, self.samples_per_epoch)
        return make_loader(dataset, self.batch_size, self.num_workers, self.pin_memory, train=True)

    def val_dataloader(self) -> DataLoader:
        """The validation pairs, whole or centre-cropped to ``val_crop``."""
        dataset = PairedImageDataset(self.val_pairs, self.val_crop)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        """Same as the validation loader."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """LQ images only, full size: items ``{"lq", "name"}``."""
        dataset = ImageDataset(self.predict_paths, self.predict_names)
        return make_loader(dataset, self.val_batch_size, self.num_workers, self.pin_memory)

    # --- layout discovery -------------------------------------------------------------

    def _describe(self, layout: str) -> str:
        if layout == "dped":
            return f"expected <root>/<phone>/training_data/{{<phone>,canon}}/N.jpg|png (phone={self.phone!r})"
        if layout == "folders":
            return f"expected <root>/{{{self.lq_dir},{self.hq_dir}}}/<same file names> (lq_dir/hq_dir)"
        return f"expected <root>/<stem>{self.lq_suffix}.<ext> with <stem>{self.hq_suffix}.<ext> (lq_suffix/hq_suffix)"

    def _dped_base(self, root: Path, part: str = "training_data") -> Path:
        """``root`` or ``root/<phone>``, whichever holds ``<part>/{<phone>,canon}``."""
        for base in (root / self.phone, root):
            if (base / part / self.phone).is_dir() and (base / part / "canon").is_dir():
                return base
        expected = self._describe("dped").replace("training_data", part)
        raise DatasetLayoutError(f"DPED layout not found under {root}: {expected}")

    def _is_present(self, root: Path, layout: str) -> bool:
        if layout == "dped":
            return any((base / "training_data" / self.phone).is_dir() for base in (root / self.phone, root))
        if layout == "folders":
            return (root / self.lq_dir).is_dir() and (root / self.hq_dir).is_dir()
        stems = [p.stem.lower() for p in find_images(root)]
        lq_suffix, hq_suffix = self.lq_suffix.lower(), self.hq_suffix.lower()
        return any(s.endswith(lq_suffix) for s in stems) and any(s.endswith(hq_suffix) for s in stems)

    def _detect(self, root: Path, expected: Optional[str] = None) -> str:
        layout = expected or self.layout
        if not root.is_dir():
            layouts = [layout] if layout != "auto" else ["dped", "folders", "suffix"]
            expectations = "; or ".join(f"{name}: {self._describe(name)}" for name in layouts)
            raise DatasetLayoutError(f"{root}: dataset folder not found ({expectations})")
        if layout != "auto":
            if not self._is_present(root, layout):
                name = "DPED" if layout == "dped" else layout
                raise DatasetLayoutError(f"{name} layout not found under {root}: {self._describe(layout)}")
            return layout
        for candidate in ("dped", "folders", "suffix"):
            if self._is_present(root, candidate):
                return candidate
        raise DatasetLayoutError(
            f"no paired layout found under {root}: dped {self._describe('dped')}; "
            f"or folders {self._describe('folders')}; or suffix {self._describe('suffix')}"
        )

    def _read_pairs(self, root: Path, layout: str) -> list[ImagePair]:
        if layout == "folders":
            return self._match_folders(root / self.lq_dir, root / self.hq_dir)
        lq, hq = {}, {}
        for path in find_images(root):
            key = path.relative_to(root).with_suffix("").as_posix()
            for suffix, side in ((self.lq_suffix, lq), (self.hq_suffix, hq)):
                if key.lower().endswith(suffix.lower()):
                    _add_unique(side, key[: len(key) - len(suffix)], path)
        return match_pairs(lq, hq, root)

    def _match_folders(self, lq_folder: Path, hq_folder: Path) -> list[ImagePair]:
        sides: list[dict[str, Path]] = [{}, {}]
        for folder, side in zip((lq_folder, hq_folder), sides):
            for path in find_images(folder):
                _add_unique(side, path.relative_to(folder).with_suffix("").as_posix(), path)
        return match_pairs(sides[0], sides[1], lq_folder.parent)


def _add_unique(side: dict[str, Path], key: str, path: Path) -> None:
    if key in side:
        raise DatasetLayoutError(f"{path}: two files share the name {key!r} ({side[key].name}); keep one")
    side[key] = path


def match_pairs(lq: dict[str, Path], hq: dict[str, Path], where: Path) -> list[ImagePair]:
    """Pair LQ and HQ files by key, warning once about files without a twin.

    Args:
        lq: LQ files by pairing key (relative path without extension or suffix).
        hq: HQ files by pairing key.
        where: The dataset folder, for messages.

    Returns:
        The pairs, naturally sorted by key (the key is the pair's name).

    Raises:
        DatasetLayoutError: No pair at all.
    """
    unpaired = sorted(set(lq) ^ set(hq), key=natural_key)
    if unpaired:
        shown = ", ".join(unpaired[:5]) + (", ..." if len(unpaired) > 5 else "")
        rank_zero_warn(f"{where}: skipping {len(unpaired)} file(s) without a twin: {shown}")
    keys = sorted(set(lq) & set(hq), key=natural_key)
    if not keys:
        raise DatasetLayoutError(f"{where}: no LQ/HQ pairs found ({len(lq)} LQ and {len(hq)} HQ files, no common names)")
    return [ImagePair(lq[key], hq[key], key) for key in keys]
