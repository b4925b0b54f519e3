"""LightningDataModules, image IO and the synthetic phone degradation."""

import os

# Albumentations queries PyPI for a newer version on import; nothing may touch the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from datamodules.degradations import PhoneDegradation  # noqa: E402 (after the variable above)
from datamodules.demo import DemoDataModule  # noqa: E402
from datamodules.div2k import DIV2KDataModule  # noqa: E402
from datamodules.dnd import DNDDataModule  # noqa: E402
from datamodules.gallery import GalleryDataModule  # noqa: E402
from datamodules.io import find_images, read_image, write_image  # noqa: E402
from datamodules.multi_domain import DOMAINS, MultiDomainDataModule, label_vector  # noqa: E402
from datamodules.paired import PairedDataModule  # noqa: E402
from datamodules.sintel import SintelDataModule  # noqa: E402
from datamodules.unpaired import UnpairedDataModule  # noqa: E402

__all__ = [
    "DIV2KDataModule",
    "DemoDataModule",
    "DNDDataModule",
    "DOMAINS",
    "GalleryDataModule",
    "MultiDomainDataModule",
    "PairedDataModule",
    "PhoneDegradation",
    "SintelDataModule",
    "UnpairedDataModule",
    "find_images",
    "label_vector",
    "read_image",
    "write_image",
]
