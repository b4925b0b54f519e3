"""Lightning callbacks: LR halving, image-quality metrics, image logging, reports, speed switches."""

from .enhancement_report import EnhancementReport
from .image_grid import ImageGridLogger
from .image_quality import ImageQualityMetrics
from .lr_halving import LRHalving
from .performance import Performance
from .prediction_writer import EnhancedImageWriter

__all__ = ["EnhancedImageWriter", "EnhancementReport", "ImageGridLogger", "ImageQualityMetrics", "LRHalving", "Performance"]
