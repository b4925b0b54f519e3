"""Fixtures of the robustness matrix."""

import pytest

from mobile2dslr.commands.import_dped import import_dped


@pytest.fixture(scope="session")
def enhancer_ckpt(shared_dir, tmp_path_factory):
    """The official DPED iPhone generator (instance norm) as a phase-1 checkpoint."""
    path = tmp_path_factory.mktemp("robustness") / "iphone.ckpt"
    import_dped(str(shared_dir / "weights" / "dped_official" / "npz" / "iphone_orig.npz"), str(path))
    return path
