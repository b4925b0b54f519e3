"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The sample data beside the repository (``../shared``); never copied into the repo.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ``../shared`` (with ``data/`` inside); fails under ``CI`` when missing, else skips."""
    if not (SHARED_DIR / "data").is_dir():
        message = f"{SHARED_DIR / 'data'}: shared sample data not found"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: the data is required)")
        pytest.skip(message)
    return SHARED_DIR
