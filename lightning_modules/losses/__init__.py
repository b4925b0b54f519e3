"""Losses: pure functions plus thin modules that hold their weights and buffers."""

from .color_loss import ColorLoss, color_loss, dped_gauss_kernel
from .content_loss import PixelContentLoss, VGGContentLoss, feature_mse, pixel_content_loss
from .intrinsic_loss import IntrinsicReconstructionLoss, ScaleInvariantMSE, lmse, reconstruction_terms, si_mse
from .lpips import LPIPS, lpips_from_features
from .matting_loss import MattingLoss, matting_laplacian, matting_loss
from .stargan_loss import (
    adversarial_d_loss, adversarial_g_loss, cycle_loss, gradient_penalty, masked_classification_loss,
)
from .style_loss import RegionStyleLoss, masked_gram, region_areas, region_style_terms, region_weights, style_loss
from .texture_loss import TextureLoss, discriminator_loss, texture_loss, to_dped_gray
from .triplet_loss import TripletLoss, triplet_loss
from .tv_loss import TVLoss, tv_loss

__all__ = [
    "ColorLoss", "color_loss", "dped_gauss_kernel",
    "PixelContentLoss", "VGGContentLoss", "feature_mse", "pixel_content_loss",
    "TextureLoss", "discriminator_loss", "texture_loss", "to_dped_gray",
    "TVLoss", "tv_loss",
    "TripletLoss", "triplet_loss",
    "LPIPS", "lpips_from_features",
    "MattingLoss", "matting_laplacian", "matting_loss",
    "IntrinsicReconstructionLoss", "ScaleInvariantMSE", "lmse", "reconstruction_terms", "si_mse",
    "adversarial_d_loss", "adversarial_g_loss", "cycle_loss", "gradient_penalty", "masked_classification_loss",
    "RegionStyleLoss", "masked_gram", "region_areas", "region_style_terms", "region_weights", "style_loss",
]
