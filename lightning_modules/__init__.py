"""One LightningModule per phase; ``nets/`` and ``losses/`` beside them."""

import warnings

from .mdie_intrinsic import IntrinsicPretrain, IntrinsicSelfSupervised
from .mdie_joint import MDIE
from .phase1_dped import DPEDPlus
from .phase2_style import SemanticStyleRefinement
from .phase3_postprocess import RegionalEqualization, gamma_correct, is_dark, region_strength, rmshe
from .recommender import ReferenceRecommender
from .style_objective import StyleObjective

# LightningCLI stores nets given as init arguments as their config (class_path), so
# checkpoints reload them; Lightning's advice to exclude them does not apply here.
warnings.filterwarnings("ignore", message=r"Attribute '.*' is an instance of `nn.Module`")

__all__ = [
    "IntrinsicPretrain", "IntrinsicSelfSupervised", "MDIE",
    "DPEDPlus", "ReferenceRecommender", "SemanticStyleRefinement", "StyleObjective",
    "RegionalEqualization", "gamma_correct", "is_dark", "region_strength", "rmshe",
]
