"""``mobile2dslr recommend``: style references for photos from a gallery of professional photos."""

import csv as csv_module
import io
import sys
from pathlib import Path
from typing import Optional

from datamodules.io import IMAGE_EXTENSIONS, find_images, write_file_atomic

from ..errors import UserError
from ..gallery_index import GalleryIndex

__all__ = ["recommend"]


def _queries(query: Path) -> list[tuple[Path, str]]:
    if query.is_file():
        return [(query, query.name)]
    if query.is_dir():
        images = find_images(query)
        if not images:
            raise UserError(f"{query}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return [(image, image.relative_to(query).as_posix()) for image in images]
    raise UserError(f"{query}: no such file or folder")


def _write_csv(path: Path, rows: list[tuple[str, str, int, float]]) -> None:
    text = io.StringIO(newline="")
    writer = csv_module.writer(text)
    writer.writerow(["image", "reference", "rank", "distance"])
    writer.writerows((image, ref, rank, f"{distance:.6g}") for image, ref, rank, distance in rows)
    write_file_atomic(path, text.getvalue().encode())


def recommend(
    query: str,
    gallery: str,
    ckpt: Optional[str] = None,
    k: int = 5,
    csv: Optional[str] = None,
    image_size: Optional[int] = None,
) -> int:
    """Print the k best style references from a gallery for a photo or a folder of photos.

    The gallery is indexed once (a progress bar) and cached; later runs describe only
    new or changed photos. With ``--ckpt`` (a recommender trained by ``mobile2dslr fit
    --config configs/mpse/recommender.yaml``) photos are ranked by its head; without it
    by the frozen VGG-16 distance alone. A photo that cannot be read is reported in one
    line and the others go on; the exit status is 1 when any failed.

    Args:
        query: an image file or a folder of images (searched recursively).
        gallery: the folder of professional photos to recommend from.
        ckpt: a ReferenceRecommender checkpoint (default: rank by frozen VGG-16 distance).
        k: references per photo.
        csv: also write ``image,reference,rank,distance`` rows here (``image`` relative
            to the query folder, ``reference`` to the gallery; rank 1 is best): the
            phase-2 data module pairs each phone photo with its references from it.
        image_size: descriptor size (default: the checkpoint's training size, else 224).

    Returns:
        0 when every photo got references, 1 when any failed.
    """
    if k < 1:
        raise UserError(f"--k must be >= 1, got {k}")
    queries = _queries(Path(query))
    index = GalleryIndex(gallery, ckpt, image_size=image_size)
    how = f"the recommender head of {ckpt}" if index.uses_head else "frozen VGG-16 distance (no --ckpt: untrained baseline)"
    cached = "" if index.computed else ", index cached"
    print(f"ranking {len(index.paths)} gallery photo(s) in {gallery} by {how}{cached}")
    for name, error in index.failures.items():
        print(f"  gallery photo skipped: {error}", file=sys.stderr)
    rows: list[tuple[str, str, int, float]] = []
    failures = []
    for path, name in queries:
        try:
            found = index.recommend(path, k)
        except UserError as err:
            failures.append(str(err))
            print(f"skipped: {err}", file=sys.stderr)
            continue
        print(f"{name}:")
        for rank, (reference, distance) in enumerate(found, start=1):
            relative = reference.relative_to(index.gallery).as_posix()
            print(f"  {rank}. {relative}  (distance {distance:.4f})")
            rows.append((name, relative, rank, distance))
    if csv is not None:
        _write_csv(Path(csv), rows)
        print(f"wrote {len(rows)} row(s) to {csv}")
    if failures:
        print(f"{len(failures)} photo(s) failed", file=sys.stderr)
    return 1 if failures else 0
