"""A tiny in-memory paired DataModule for fast LightningModule tests."""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class _Pairs(Dataset):
    def __init__(self, hq: torch.Tensor, length: int):
        self.hq, self.length = hq, length
        self.lq = (hq * 0.5) ** 1.2  # a darker, lower-contrast "phone" version

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        i = index % len(self.hq)
        return {"lq": self.lq[i], "hq": self.hq[i], "name": f"img{i}"}


class TinyPairs(pl.LightningDataModule):
    """Smooth random images and a fixed darkening: learnable in a few steps."""

    def __init__(self, patch_size: int = 32, batch_size: int = 4, images: int = 4, length: int = 64):
        super().__init__()
        self.patch_size, self.batch_size = patch_size, batch_size
        g = torch.Generator().manual_seed(0)
        coarse = torch.rand(images, 3, 4, 4, generator=g)
        self.hq = torch.nn.functional.interpolate(coarse, size=patch_size, mode="bilinear", align_corners=False)
        self.length = length

    def train_dataloader(self):
        return DataLoader(_Pairs(self.hq, self.length), batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(_Pairs(self.hq, len(self.hq)), batch_size=1)

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader


class NaNPairs(TinyPairs):
    """TinyPairs whose targets turn to NaN from the ``nan_from``-th training batch on."""

    def __init__(self, nan_from: int = 3, patch_size: int = 32, batch_size: int = 2):
        super().__init__(patch_size=patch_size, batch_size=batch_size)
        self.nan_from = nan_from

    def train_dataloader(self):
        for index, batch in enumerate(super().train_dataloader()):
            if index + 1 >= self.nan_from:
                batch["hq"] = torch.full_like(batch["hq"], float("nan"))
            yield batch


class _Domains(Dataset):
    """Items of the three MDIE datasets in turn: image, its own label bit and a one-hot mask."""

    def __init__(self, hq: torch.Tensor, length: int):
        self.hq, self.length = hq, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        image, dataset, quality = self.hq[index % len(self.hq)], index % 3, (index // 3) % 2
        mask = torch.zeros(3)
        mask[dataset] = 1
        label = mask * quality
        return {"image": image if quality else (image * 0.5) ** 1.2, "label": label, "mask": mask, "name": f"img{index}"}


class TinyDomains(TinyPairs):
    """TinyPairs whose training items carry MDIE's labels (``label``, one-hot ``mask``)."""

    def train_dataloader(self):
        return DataLoader(_Domains(self.hq, self.length), batch_size=self.batch_size, shuffle=False, drop_last=True)
