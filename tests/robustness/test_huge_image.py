"""Matrix 1, huge input: a 50-megapixel photo through `enhance` in bounded memory (slow)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from datamodules import read_image, write_image
from mobile2dslr import REPO_ROOT
from mobile2dslr.cli import main


@pytest.mark.slow
def test_50_megapixel_photo_is_tiled_in_bounded_memory(tmp_path):
    height, width = 6144, 8192  # 50.3 MP
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    photo = np.dstack([x * np.ones_like(y), y * np.ones_like(x), 0.5 * (x + y)])
    write_image(tmp_path / "in" / "huge.png", photo)
    del photo
    # A small batch-norm generator, trained for two iterations, stands in for a real model.
    main(["fit", "--config", "configs/mpse/demo_phase1.yaml", "--data.patch_size", "32", "--data.batch_size", "2",
          "--data.val_crop", "48", "--data.num_workers", "0", "--model.discriminator.init_args.patch_size", "32",
          "--model.generator.init_args.width", "8", "--trainer.logger", "false", "--trainer.max_steps", "4",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run")])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    probe = (
        "import resource, sys; from mobile2dslr.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    started = time.time()
    result = subprocess.run([sys.executable, "-c", probe, "enhance", str(tmp_path / "in"), str(tmp_path / "out"),
                             "--ckpt", str(ckpt), "--tile", "1024"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    seconds = time.time() - started
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gb = int(result.stdout.split("PEAK_RSS_KB")[1].split()[0]) / 2**20
    print(f"50 MP enhance: {seconds:.0f} s, peak RSS {peak_gb:.2f} GB")
    # The image alone is 0.6 GB as float32; untiled activations of this net would be ~13 GB.
    assert peak_gb < 5.0
    assert read_image(tmp_path / "out" / "huge.png").shape == (height, width, 3)
