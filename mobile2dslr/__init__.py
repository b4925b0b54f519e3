"""mobile2dslr: learn to turn mobile-phone photos into DSLR-quality photos."""

import os
from pathlib import Path

# Lightning's own use of deprecated jsonargparse calls: nothing a user can act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

__version__ = "0.1.0"

#: The repository root (the project is installed editable): ``configs/...`` resolve from here.
REPO_ROOT = Path(__file__).resolve().parents[1]
