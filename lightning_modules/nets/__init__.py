"""Networks: plain ``nn.Module``s that know nothing of Lightning."""

from .dped_discriminator import DPEDDiscriminator
from .dped_generator import DPEDGenerator, equalize_luminance
from .vgg import VGG19Features

__all__ = ["DPEDDiscriminator", "DPEDGenerator", "VGG19Features", "equalize_luminance"]
