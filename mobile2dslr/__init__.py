"""mobile2dslr: learn to turn mobile-phone photos into DSLR-quality photos."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root (the project is installed editable): ``configs/...`` resolve from here.
REPO_ROOT = Path(__file__).resolve().parents[1]
