"""Networks: plain ``nn.Module``s that know nothing of Lightning."""

from .dped_discriminator import DPEDDiscriminator
from .dped_generator import DPEDGenerator, equalize_luminance
from .embedding_head import EmbeddingHead
from .intrinsic_autoencoder import IntrinsicAutoencoder, IntrinsicComposer, IntrinsicDecomposer
from .mdie_enhancer import MDIEEnhancer
from .stargan import StarGANDiscriminator, StarGANGenerator
from .lambda_head import LambdaHead
from .vgg import VGG19Features
from .vgg16 import VGG16Features

__all__ = [
    "DPEDDiscriminator", "DPEDGenerator", "EmbeddingHead", "VGG16Features", "LambdaHead", "VGG19Features", "equalize_luminance",
    "IntrinsicAutoencoder", "IntrinsicComposer", "IntrinsicDecomposer", "MDIEEnhancer", "StarGANDiscriminator", "StarGANGenerator",
]
