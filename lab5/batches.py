"""What the training loop feeds on: batches of cached features, or of raw pairs when fine-tuning end to end."""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch

from .config import Config
from .data import Dataset
from .features import Features
from .models import text_key_suffix, uses_sequences
from .text import encoder_texts


class Batches(Protocol):
    labels: torch.Tensor

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> dict: ...


def _labels(labels, n: int) -> torch.Tensor:
    return torch.tensor(np.array(labels if labels is not None else [-1] * n), dtype=torch.long)


class FeatureData:
    """Rows of cached features for ``guids``; ``batch(idx)`` gathers a feature dict (padding trimmed)."""

    def __init__(self, features: Features, guids, labels=None, sequences: bool = True):
        self.guids = list(guids)
        i = features.image
        ir = i.rows(self.guids)
        self.tensors = {"image_pooled": i.pooled[ir], "image_mask": i.mask[ir]}
        if sequences:  # heads that read only pooled vectors skip gathering the (large) sequences
            self.tensors["image_seq"] = i.seq[ir]
        self.suffixes = ["", *(text_key_suffix(name) for name in features.more_text)]
        for suffix, t in zip(self.suffixes, [features.text, *features.more_text.values()]):
            tr = t.rows(self.guids)
            self.tensors.update({"text_pooled" + suffix: t.pooled[tr], "text_mask" + suffix: t.mask[tr]})
            if sequences:
                self.tensors["text_seq" + suffix] = t.seq[tr]
        self.labels = _labels(labels, len(self.guids))

    def __len__(self) -> int:
        return len(self.guids)

    def batch(self, idx: torch.Tensor) -> dict:
        b = {k: v[idx] for k, v in self.tensors.items()}
        for s in self.suffixes:
            n = max(1, int(b["text_mask" + s].sum(1).max()))  # right-padded: keep only the longest text's tokens
            b["text_mask" + s] = b["text_mask" + s][:, :n]
            if "text_seq" + s in b:
                b["text_seq" + s] = b["text_seq" + s][:, :n]
        b["label"] = self.labels[idx]
        return b


class RawData:
    """Raw pairs for end-to-end fine-tuning: tokenised text and transformed images, made per batch."""

    def __init__(self, ds: Dataset, guids, labels, text_encoder, image_encoder, cfg: Config, train: bool):
        self.ds, self.guids = ds, list(guids)
        self.tokens = None
        if text_encoder is not None:
            texts = encoder_texts(ds.all.set_index("guid").loc[self.guids, "text"], cfg.text_clean)
            self.tokens = text_encoder.tokenize(texts, cfg.max_length)
        self.transform = image_encoder.spec.transform(train=train) if image_encoder is not None else None
        self.min_side = image_encoder.spec.resize if image_encoder is not None else None
        self.labels = _labels(labels, len(self.guids))

    def __len__(self) -> int:
        return len(self.guids)

    def batch(self, idx: torch.Tensor) -> dict:
        b = {"label": self.labels[idx]}
        if self.tokens is not None:
            ids, mask = self.tokens["input_ids"][idx], self.tokens["attention_mask"][idx]
            n = int(mask.sum(1).max())
            b.update(input_ids=ids[:, :n], attention_mask=mask[:, :n])
        if self.transform is not None:
            b["pixels"] = torch.stack([self.transform(self.ds.image(self.guids[j], self.min_side)) for j in idx.tolist()])
        return b


def make_data(cfg: Config, ds: Dataset, guids, labels, features: Features | None = None, model=None,
              train: bool = False) -> Batches:
    """Batches of cached features, or (``cfg.finetune``) of raw pairs for the encoders attached to ``model``."""
    if cfg.finetune:
        return RawData(ds, guids, labels, model.text_encoder, model.image_encoder, cfg, train)
    return FeatureData(features, guids, labels, sequences=uses_sequences(cfg.model) or cfg.text_top > 0)


def class_weights(labels: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Inverse-frequency ("balanced") class weights, as scikit-learn computes them."""
    counts = torch.bincount(labels, minlength=n).float().clamp(min=1)
    return len(labels) / (n * counts)


def batch_order(data: Batches, batch_size: int, gen: torch.Generator | None = None, shuffle: bool = False,
                balanced: bool = False) -> Iterator[torch.Tensor]:
    """Index batches: in order, shuffled by ``gen``, or drawn with class-balanced replacement (``balanced``)."""
    n = len(data)
    if shuffle and balanced:
        order = torch.multinomial(class_weights(data.labels)[data.labels], n, replacement=True, generator=gen)
    elif shuffle:
        order = torch.randperm(n, generator=gen)
    else:
        order = torch.arange(n)
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]
