"""MPSE reference recommender: a triplet-trained head on frozen VGG-16 (DESIGN.md sec. 1, item 2)."""

from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn

from mobile2dslr.errors import UserError

from .hparams import nets_without_config
from .losses.triplet_loss import TripletLoss
from .nets.embedding_head import EmbeddingHead
from .nets.vgg16 import VGG16Features

__all__ = ["ReferenceRecommender", "mine_triplets", "mean_average_precision"]


def mine_triplets(
    query: torch.Tensor, bank: torch.Tensor, self_index: torch.Tensor, candidates: int, positives: int, negatives: int,
    query_groups: Optional[torch.Tensor] = None, bank_groups: Optional[torch.Tensor] = None,
    overlap: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick each query's positives and negatives in the bank (thesis: K=60, P=10, N=50).

    The candidates are the K bank items nearest to the query by Euclidean distance of
    frozen descriptors (the query itself, ``self_index`` >= 0, is never one).
    Positives: with groups, the P nearest items of the query's group, inside the
    candidates or not (a true positive the frozen features rank low is what the head
    must learn to pull in); without, the P candidates of highest semantic ``overlap``.
    Negatives: the N nearest candidates that are not positives (hard negatives); when
    K leaves fewer than N, random other bank items fill up (small K still trains).

    Args:
        query: (B, D) descriptors; bank: (M, D) descriptors; self_index: (B,) long.
        query_groups, bank_groups: (B,), (M,) group ids, or None without labels.
        overlap: (B, M) semantic similarity, needed without groups.

    Returns:
        ``positive_index`` (B, P'), ``positive_mask`` (B, P'), ``negative_index`` (B, N'),
        ``negative_mask`` (B, N'); P' = min(P, M), N' = min(N, M); masks mark real picks.
    """
    distance = torch.cdist(query, bank)
    rows = torch.arange(len(query), device=query.device)
    itself = torch.zeros_like(distance, dtype=torch.bool)
    has_self = self_index >= 0
    itself[rows[has_self], self_index[has_self]] = True
    distance = distance.masked_fill(itself, float("inf"))
    rank = distance.argsort(dim=1).argsort(dim=1)
    candidate = (rank < candidates) & ~itself
    inf = torch.tensor(float("inf"), device=query.device)
    if query_groups is not None and bank_groups is not None:
        positive_key = torch.where((query_groups[:, None] == bank_groups[None]) & ~itself, distance, inf)
    elif overlap is not None:
        positive_key = torch.where(candidate, -overlap, inf)
    else:
        raise ValueError("mine_triplets needs group ids or a semantic overlap")
    key, positive_index = positive_key.topk(min(positives, bank.shape[0]), dim=1, largest=False)
    positive_mask = torch.isfinite(key)
    is_positive = torch.zeros_like(itself).scatter_(1, positive_index, positive_mask)
    if query_groups is not None and bank_groups is not None:
        is_positive |= query_groups[:, None] == bank_groups[None]  # never a group mate as negative
    other = ~is_positive & ~itself
    finite_max = distance[torch.isfinite(distance)].max() if torch.isfinite(distance).any() else inf
    filler = finite_max + 1 + torch.rand_like(distance)  # after every candidate, in random order
    negative_key = torch.where(other, torch.where(candidate, distance, filler), inf)
    key, negative_index = negative_key.topk(min(negatives, bank.shape[0]), dim=1, largest=False)
    return positive_index, positive_mask, negative_index, torch.isfinite(key)


def mean_average_precision(distance: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over queries of AP@k: Σ_i≤k precision@i · rel_i / min(#relevant, k).

    Queries with no relevant item are left out (NaN when none has one).

    Example:
        >>> d = torch.tensor([[0.1, 0.2, 0.3]])
        >>> round(float(mean_average_precision(d, torch.tensor([[False, True, True]]), k=3)), 4)  # (1/2 + 2/3) / 2
        0.5833
    """
    k = min(k, distance.shape[1])
    order = distance.topk(k, dim=1, largest=False).indices
    hit = relevant.gather(1, order).float()
    precision = hit.cumsum(1) / torch.arange(1, k + 1, device=distance.device)
    ap = (precision * hit).sum(1) / relevant.sum(1).clamp(max=k).clamp_min(1)
    return ap[relevant.any(1)].mean()


class ReferenceRecommender(pl.LightningModule):
    """Recommends style references from a gallery: a triplet-trained FC head on frozen VGG-16.

    Since VGG-16 is frozen, each gallery and query crop is described once (pooled
    relu5_3, 512-d, cached); training only runs the head. Batches are dicts from
    :class:`datamodules.gallery.GalleryDataModule` (``image``, ``group``, ``index``,
    ``self_index``); the bank of each split comes from its ``gallery_dataloader(split)``.
    Validation ranks every held-out query against the held-out gallery and logs the mean
    average precision of its positives in the top ``map_k``: ``val/map`` with the head,
    ``val/map_vgg`` with the frozen VGG-16 distance alone (the baseline).

    Args:
        candidates: K, the nearest gallery items (frozen VGG distance) mined per query.
        positives: P, positives per query (same group; or, without labels, the most
            semantically similar candidates by segmentation label histogram overlap).
        negatives: N, negatives per query (nearest non-positive candidates).
        margin: triplet margin, in units of the head's L2-normalised embedding.
        lr: Adam learning rate of the head.
        weight_decay: Adam weight decay of the head.
        head: the trainable head (default ``EmbeddingHead()``).
        segmenter: semantic segmenter for galleries without labels (default:
            ``lightning_modules.segmentation.default_segmenter()``, built when needed).
        vgg_weights: ``imagenet``, ``random`` (tests only) or a VGG-16 state dict path.
        map_k: the k of the validation mean average precision.
    """

    def __init__(
        self,
        candidates: int = 60,
        positives: int = 10,
        negatives: int = 50,
        margin: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        head: Optional[nn.Module] = None,
        segmenter: Optional[nn.Module] = None,
        vgg_weights: str = "imagenet",
        map_k: int = 10,
    ):
        super().__init__()
        if min(candidates, positives, negatives, map_k) < 1:
            raise UserError(f"ReferenceRecommender: candidates, positives, negatives and map_k must be >= 1, "
                            f"got {candidates}, {positives}, {negatives}, {map_k}")
        self.save_hyperparameters(ignore=nets_without_config(locals()))
        self.vgg = VGG16Features(("relu5_3",), weights=vgg_weights)
        self.head = head if head is not None else EmbeddingHead()
        self.segmenter = segmenter
        self.triplet_loss = TripletLoss(margin)
        self.image_size: Optional[int] = None  # recorded in checkpoints for the gallery index
        # Frozen-feature caches (never in checkpoints): split → bank; (split, index) → query.
        self._banks: dict[str, dict[str, torch.Tensor]] = {}
        self._queries: dict[tuple[str, int], tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
        self._default_segmenter: list[nn.Module] = []  # a list keeps it out of state_dict
        self._val: list[dict[str, torch.Tensor]] = []

    @torch.no_grad()
    def describe(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen descriptors (B, 512) of RGB images (B, 3, H, W) in [0, 1]."""
        return self.vgg.pooled(images)

    def embed_descriptors(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Head embeddings (B, D) of frozen descriptors (B, 512)."""
        return self.head(descriptors)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D) of RGB images (B, 3, H, W) in [0, 1]; rank by Euclidean distance."""
        return self.embed_descriptors(self.describe(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`embed`."""
        return self.embed(images)

    def _histograms(self, images: torch.Tensor) -> torch.Tensor:
        from .segmentation import default_segmenter, label_histogram  # written beside; imported when needed

        segmenter = self.segmenter
        if segmenter is None:
            if not self._default_segmenter:
                self._default_segmenter.append(default_segmenter().to(self.device))
            segmenter = self._default_segmenter[0]
        with torch.no_grad():
            return label_histogram(segmenter(images), len(segmenter.label_names)).float()

    def _bank(self, split: str) -> dict[str, torch.Tensor]:
        if split not in self._banks:
            datamodule = getattr(self.trainer, "datamodule", None)
            if not hasattr(datamodule, "gallery_dataloader"):
                raise UserError("ReferenceRecommender needs a DataModule with gallery_dataloader(split), "
                                "e.g. datamodules.GalleryDataModule")
            parts: dict[str, list] = {"descriptors": [], "groups": [], "histograms": []}
            for batch in datamodule.gallery_dataloader(split):
                images = batch["image"].to(self.device)
                parts["descriptors"].append(self.describe(images))
                parts["groups"].append(batch["group"].to(self.device))
                if (batch["group"] < 0).any():
                    parts["histograms"].append(self._histograms(images))
            self._banks[split] = {k: torch.cat(v) for k, v in parts.items() if v}
        return self._banks[split]

    def _query(self, split: str, batch: dict) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Descriptors (and, without labels, histograms) of a batch of queries, cached."""
        bank = self._bank(split)
        self_index = batch["self_index"]
        if bool((self_index >= 0).all()):  # gallery items: already described
            return bank["descriptors"][self_index], bank["histograms"][self_index] if "histograms" in bank else None
        keys = [(split, int(i)) for i in batch["index"]]
        if any(key not in self._queries for key in keys):
            images = batch["image"]
            histograms = self._histograms(images) if bool((batch["group"] < 0).any()) else None
            for row, (key, descriptor) in enumerate(zip(keys, self.describe(images))):
                self._queries[key] = (descriptor, None if histograms is None else histograms[row])
        descriptors = torch.stack([self._queries[key][0] for key in keys])
        histograms = [self._queries[key][1] for key in keys]
        return descriptors, None if histograms[0] is None else torch.stack(histograms)

    def _overlap(self, query_histograms: Optional[torch.Tensor], bank: dict) -> Optional[torch.Tensor]:
        if query_histograms is None or "histograms" not in bank:
            return None
        from .segmentation import histogram_overlap

        return histogram_overlap(query_histograms, bank["histograms"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.image_size = int(batch["image"].shape[-1])
        bank = self._bank("train")
        query, histograms = self._query("train", batch)
        labelled = bool((batch["group"] >= 0).all())
        hp = self.hparams
        pos, pos_mask, neg, neg_mask = mine_triplets(
            query, bank["descriptors"], batch["self_index"], hp.candidates, hp.positives, hp.negatives,
            batch["group"] if labelled else None, bank["groups"] if labelled else None,
            None if labelled else self._overlap(histograms, bank),
        )
        embed = self.embed_descriptors
        loss = self.triplet_loss(embed(query), embed(bank["descriptors"][pos.flatten()]).view(*pos.shape, -1),
                                 embed(bank["descriptors"][neg.flatten()]).view(*neg.shape, -1), pos_mask, neg_mask)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.global_step + 1}: triplet loss is {loss.item()}; stopping before it is applied")
        size = len(query)
        self.log("train/triplet", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        self.log("train/positives", pos_mask.float().sum(1).mean(), on_step=True, on_epoch=False, batch_size=size)
        return self.triplet_loss.weight * loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Describe and embed a batch of held-out queries; ranking is scored at epoch end."""
        query, histograms = self._query("val", batch)
        self._val.append({"descriptors": query, "embeddings": self.embed_descriptors(query),
                          "groups": batch["group"], "self_index": batch["self_index"], "histograms": histograms})

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        bank = self._bank("val")
        val = {k: torch.cat([v[k] for v in self._val]) for k in self._val[0] if self._val[0][k] is not None}
        self._val.clear()
        rows = torch.arange(len(val["descriptors"]), device=self.device)
        itself = torch.zeros(len(rows), len(bank["descriptors"]), dtype=torch.bool, device=self.device)
        has_self = val["self_index"] >= 0
        itself[rows[has_self], val["self_index"][has_self]] = True
        if bool((val["groups"] >= 0).all()):
            relevant = (val["groups"][:, None] == bank["groups"][None]) & ~itself
        else:  # no labels: the P most semantically similar gallery items are the positives
            overlap = self._overlap(val["histograms"], bank).masked_fill(itself, -1.0)
            top = overlap.topk(min(self.hparams.positives, overlap.shape[1]), dim=1).indices
            relevant = torch.zeros_like(itself).scatter_(1, top, True) & ~itself
        k = self.hparams.map_k
        head_distance = torch.cdist(val["embeddings"], self.embed_descriptors(bank["descriptors"]))
        vgg_distance = torch.cdist(val["descriptors"], bank["descriptors"])
        self.log("val/map", mean_average_precision(head_distance.masked_fill(itself, float("inf")), relevant, k), prog_bar=True)
        self.log("val/map_vgg", mean_average_precision(vgg_distance.masked_fill(itself, float("inf")), relevant, k))

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["image_size"] = self.image_size

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.image_size = checkpoint.get("image_size")
