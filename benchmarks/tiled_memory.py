"""Time and peak memory of `mobile2dslr enhance` on a 12 MP photo, per tile size.

Each run is a fresh `mobile2dslr enhance` process (the default inference path), started
from this module run as a small stdlib-only launcher: a forked child's ``ru_maxrss``
(from ``os.wait4``) also counts the pages it inherited before ``exec``, so a launcher that
holds a big process's memory would inflate every measurement.

    python benchmarks/tiled_memory.py PHOTO CKPT OUT_DIR TILE [TILE ...]   # prints JSON rows
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["make_photo", "enhance_run", "run_in_launcher"]


def make_photo(path: Path, height: int = 3000, width: int = 4000, source: Path | None = None) -> Path:
    """A 12 MP JPEG: a real full-size DPED photo upscaled when ``source`` exists, else smooth noise."""
    import cv2
    import numpy as np

    from datamodules.io import read_image, write_image

    if source is not None and source.is_file():
        image = cv2.resize(read_image(source), (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        rng = np.random.default_rng(0)
        image = cv2.resize(rng.random((height // 50, width // 50, 3), dtype=np.float32), (width, height))
    write_image(path, np.clip(image, 0, 1))
    return path


def enhance_run(photo: Path, ckpt: Path, out: Path, tile: int, extra: tuple[str, ...] = ()) -> dict:
    """Enhance ``photo`` in a fresh process: its own timing (``wrote ... in X s``), the whole
    process's wall time (imports and model loading included) and its peak RSS in GiB."""
    command = [sys.executable, "-m", "mobile2dslr", "enhance", str(photo), str(out), "--ckpt", str(ckpt),
               "--tile", str(tile), "--overwrite", "true", *extra]
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out_file, stderr=err_file, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # not Popen.wait: wait4 also gives the child's rusage
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0), err_file.seek(0)
        stdout, stderr = out_file.read(), err_file.read()
    if process.returncode != 0:
        raise RuntimeError(f"enhance failed with tile {tile}: {stderr.strip().splitlines()[-1] if stderr.strip() else status}")
    found = re.search(r"in ([0-9.]+) s, ([0-9.]+) MP/s", stdout)
    return {
        "tile": tile,
        "seconds": float(found.group(1)) if found else wall,
        "megapixels_per_s": float(found.group(2)) if found else float("nan"),
        "process_seconds": wall,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
    }


def run_in_launcher(photo: Path, ckpt: Path, out: Path, tiles: list[int]) -> list[dict]:
    """:func:`enhance_run` per tile from a fresh small process (see the module docstring)."""
    command = [sys.executable, __file__, str(photo), str(ckpt), str(out), *map(str, tiles)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    photo_arg, ckpt_arg, out_arg, *tile_args = sys.argv[1:]
    rows = [enhance_run(Path(photo_arg), Path(ckpt_arg), Path(out_arg) / f"enhanced_{t}.jpg", int(t)) for t in tile_args]
    print(json.dumps(rows))
