"""One LightningModule per phase; ``nets/`` and ``losses/`` beside them."""

import warnings

from .phase1_dped import DPEDPlus

# LightningCLI stores nets given as init arguments as their config (class_path), so
# checkpoints reload them; Lightning's advice to exclude them does not apply here.
warnings.filterwarnings("ignore", message=r"Attribute '.*' is an instance of `nn.Module`")

__all__ = ["DPEDPlus"]
