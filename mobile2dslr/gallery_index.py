"""An on-disk index of a gallery folder for the reference recommender.

Each gallery photo is described once by frozen VGG-16 (pooled relu5_3 of its largest
centre square, resized as in training) and the descriptors are cached under
``cache_dir() / "galleries"``, keyed by the folder, the descriptor size and the VGG
weights of the recommender checkpoint (the checkpoint's path, size and mtime are part
of the key). The cache is checked against the folder on every use: new or changed
files (size, mtime) are described, removed ones dropped, the rest reused. Head
embeddings are a few matrix products over the descriptors, so they are computed on
load and always match the checkpoint given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from tqdm import tqdm

from datamodules.gallery import square_crops
from datamodules.io import find_images, read_image
from lightning_modules.nets.pretrained import cache_dir

from .checkpoints import load_phase
from .errors import UserError, WeightsError

log = logging.getLogger(__name__)

__all__ = ["GalleryIndex", "recommend", "DEFAULT_IMAGE_SIZE"]

#: Descriptor size when the checkpoint records none (or without a checkpoint).
DEFAULT_IMAGE_SIZE = 224
_VERSION = 1


def _stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


class GalleryIndex:
    """Descriptors (and head embeddings) of every photo in a gallery folder.

    Args:
        gallery: the folder of professional photos (searched recursively).
        ckpt: a ``ReferenceRecommender`` checkpoint; without one, photos are ranked by
            the frozen VGG-16 distance alone.
        image_size: side of the square the descriptor is computed on (default: the
            checkpoint's training size, else 224).
        vgg_weights: VGG-16 weights without a checkpoint (``imagenet``; ``random`` for tests).
        progress: show a progress bar while describing photos.

    Attributes:
        paths: the indexed photos (unreadable ones are left out and listed in ``failures``).
        computed: how many photos this instance described (0 when the cache was current).
    """

    def __init__(self, gallery: Union[str, Path], ckpt: Optional[str] = None, image_size: Optional[int] = None,
                 vgg_weights: str = "imagenet", progress: bool = True) -> None:
        self.gallery = Path(gallery)
        if not self.gallery.is_dir():
            raise UserError(f"{self.gallery}: gallery folder not found")
        self.ckpt = ckpt
        embed: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
        if ckpt is not None:
            model = load_phase(ckpt)
            if not hasattr(model, "embed_descriptors"):
                raise WeightsError(f"{ckpt}: a {type(model).__name__} checkpoint does not recommend references; "
                                   "pass a ReferenceRecommender checkpoint (configs/mpse/recommender.yaml)")
            model.eval()
            vgg, embed = model.vgg, model.embed_descriptors
            image_size = image_size or getattr(model, "image_size", None)
            weights_id: object = [str(Path(ckpt).resolve()), *_stat(Path(ckpt))]
        else:
            from lightning_modules.nets.vgg16 import VGG16Features

            vgg = VGG16Features(weights=vgg_weights)
            weights_id = vgg.weights
        self.image_size = int(image_size or DEFAULT_IMAGE_SIZE)
        self._vgg, self._embed = vgg, embed
        key = json.dumps([_VERSION, str(self.gallery.resolve()), self.image_size, weights_id])
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.cache_file = cache_dir() / "galleries" / f"{self.gallery.resolve().name}-{digest}.pt"
        self.computed = 0
        self.failures: dict[str, str] = {}
        self._index(progress)

    @torch.no_grad()
    def describe(self, image: np.ndarray) -> torch.Tensor:
        """The (512,) descriptor of an HxWx3 float image in [0, 1] (its largest centre square)."""
        crop = square_crops(image, 1, self.image_size, np.random.default_rng(0))[0]
        tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None].float() / 255.0
        return self._vgg.pooled(tensor)[0]

    def _index(self, progress: bool) -> None:
        files = find_images(self.gallery)
        cached = self._read_cache()
        entries: dict[str, dict] = {}
        todo = []
        for file in files:
            name = file.relative_to(self.gallery).as_posix()
            old = cached.get(name)
            if old is not None and old["stat"] == _stat(file):
                entries[name] = old
            else:
                todo.append((name, file))
        for name, file in tqdm(todo, desc=f"indexing {self.gallery}", unit="img", disable=not progress or not todo):
            entry: dict = {"stat": _stat(file)}
            try:
                entry["descriptor"] = self.describe(read_image(file))
            except UserError as err:
                entry["error"] = str(err)
                tqdm.write(f"skipped: {err}", file=sys.stderr)
            entries[name] = entry
        self.computed = len(todo)
        if todo or len(entries) != len(cached):
            self._write_cache(entries)
        good = [name for name in entries if "descriptor" in entries[name]]
        self.failures = {name: entry["error"] for name, entry in entries.items() if "error" in entry}
        if not good:
            raise UserError(f"{self.gallery}: no readable gallery photo" + (" (no images found)" if not entries else ""))
        self.paths = [self.gallery / name for name in good]
        self.descriptors = torch.stack([entries[name]["descriptor"] for name in good])
        with torch.no_grad():
            self.embeddings = self._embed(self.descriptors) if self._embed is not None else None

    def _read_cache(self) -> dict[str, dict]:
        if not self.cache_file.is_file():
            return {}
        try:
            data = torch.load(self.cache_file, map_location="cpu", weights_only=True)
            return data["entries"] if data.get("version") == _VERSION else {}
        except Exception as err:  # a corrupt cache is rebuilt, never trusted
            log.warning("ignoring unreadable gallery index %s (%s)", self.cache_file, err)
            return {}

    def _write_cache(self, entries: dict[str, dict]) -> None:
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.cache_file.parent, suffix=".tmp", delete=False) as tmp:
                torch.save({"version": _VERSION, "entries": entries}, tmp)
            os.replace(tmp.name, self.cache_file)
        except OSError as err:
            log.warning("could not cache the gallery index in %s (%s)", self.cache_file.parent, err)

    @property
    def uses_head(self) -> bool:
        """Whether ranking uses the checkpoint's head (else the frozen VGG-16 distance)."""
        return self.embeddings is not None

    def recommend(self, image_or_path: Union[str, Path, np.ndarray], k: int = 5) -> list[tuple[Path, float]]:
        """The ``k`` gallery photos nearest to a query, best first, as (path, distance).

        A query that is itself a gallery photo is never its own recommendation.

        Args:
            image_or_path: an image file, or an HxWx3 float array in [0, 1].
            k: how many references.
        """
        if k < 1:
            raise UserError(f"k must be >= 1, got {k}")
        is_path = isinstance(image_or_path, (str, Path))
        descriptor = self.describe(read_image(image_or_path) if is_path else np.asarray(image_or_path, dtype=np.float32))
        with torch.no_grad():
            if self.uses_head:
                distance = torch.cdist(self._embed(descriptor[None]), self.embeddings)[0]
            else:
                distance = torch.cdist(descriptor[None], self.descriptors)[0]
        if is_path:
            itself = Path(image_or_path).resolve()
            distance = torch.stack([torch.tensor(float("inf")) if p.resolve() == itself else d for p, d in zip(self.paths, distance)])
        order = distance.argsort()[:k]
        return [(self.paths[i], float(distance[i])) for i in order.tolist() if torch.isfinite(distance[i])]


def recommend(image_or_path: Union[str, Path, np.ndarray], gallery: Union[str, Path], k: int = 5,
              ckpt: Optional[str] = None) -> list[tuple[Path, float]]:
    """The ``k`` best style references for a photo from a gallery folder, best first.

    Indexes the gallery (cached on disk, refreshed when the folder changes) and ranks
    by the checkpoint's head embedding, or by frozen VGG-16 distance without ``ckpt``.
    """
    return GalleryIndex(gallery, ckpt, progress=False).recommend(image_or_path, k)
