"""Losses: pure functions plus thin modules that hold their weights and buffers."""

from .color_loss import ColorLoss, color_loss, dped_gauss_kernel
from .content_loss import PixelContentLoss, VGGContentLoss, feature_mse, pixel_content_loss
from .texture_loss import TextureLoss, discriminator_loss, texture_loss, to_dped_gray
from .tv_loss import TVLoss, tv_loss

__all__ = [
    "ColorLoss", "color_loss", "dped_gauss_kernel",
    "PixelContentLoss", "VGGContentLoss", "feature_mse", "pixel_content_loss",
    "TextureLoss", "discriminator_loss", "texture_loss", "to_dped_gray",
    "TVLoss", "tv_loss",
]
