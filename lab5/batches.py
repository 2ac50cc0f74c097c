"""What the training loop feeds on: batches of cached features, or of raw pairs when fine-tuning end to end."""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch

from .config import ModelGroup, text_encoder_names
from .data import Dataset
from .features import Features
from .models import ensemble_members, uses_sequences


class Batches(Protocol):
    labels: torch.Tensor

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> dict: ...


def _labels(labels, n: int) -> torch.Tensor:
    return torch.tensor(np.array(labels if labels is not None else [-1] * n), dtype=torch.long)


class FeatureData:
    """Rows of cached features (one text encoder) for ``guids``; ``batch(idx)`` gathers a padding-trimmed dict."""

    def __init__(self, features: Features, guids, labels=None, sequences: bool = True):
        self.guids = list(guids)
        t, i = features.text, features.image
        tr, ir = t.rows(self.guids), i.rows(self.guids)
        self.tensors = {"text_pooled": t.pooled[tr], "text_mask": t.mask[tr],
                        "image_pooled": i.pooled[ir], "image_mask": i.mask[ir]}
        if sequences:  # heads that read only pooled vectors skip gathering the (large) sequences
            self.tensors.update(text_seq=t.seq[tr], image_seq=i.seq[ir])
        self.labels = _labels(labels, len(self.guids))
        self.lengths = self.tensors["text_mask"].sum(1) if sequences else None

    def __len__(self) -> int:
        return len(self.guids)

    def batch(self, idx: torch.Tensor) -> dict:
        b = {k: v[idx] for k, v in self.tensors.items()}
        n = max(1, int(b["text_mask"].sum(1).max()))  # right-padded: keep only the longest text's tokens
        b["text_mask"] = b["text_mask"][:, :n]
        if "text_seq" in b:
            b["text_seq"] = b["text_seq"][:, :n]
        b["label"] = self.labels[idx]
        return b


class EnsembleData:
    """The same rows for every text encoder of an ensemble: ``batch(idx)`` gives one feature dict per encoder."""

    def __init__(self, views: dict[str, FeatureData]):
        self.views = views
        first = next(iter(views.values()))
        self.guids, self.labels, self.lengths = first.guids, first.labels, None

    def __len__(self) -> int:
        return len(self.guids)

    def batch(self, idx: torch.Tensor) -> dict[str, dict]:
        return {name: view.batch(idx) for name, view in self.views.items()}


class RawData:
    """Raw pairs for end-to-end fine-tuning: tokenised text and transformed images, made per batch."""

    def __init__(self, ds: Dataset, guids, labels, text_encoder, image_encoder, max_length: int, train: bool):
        self.ds, self.guids = ds, list(guids)
        self.lengths = None  # not bucketed
        self.tokens = None
        if text_encoder is not None:
            self.tokens = text_encoder.tokenize(list(ds.rows(self.guids).text), max_length)
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


def make_data(arch: ModelGroup, ds: Dataset, guids, labels, features: Features | None = None, model=None,
              train: bool = False) -> Batches:
    """Batches of cached features, or (``arch.finetune``) of raw pairs for the encoders attached to ``model``."""
    if arch.finetune:
        return RawData(ds, guids, labels, model.text_encoder, model.image_encoder, arch.max_length, train)
    sequences = uses_sequences(arch.model)
    if len(ensemble_members(arch)) > 1:
        return EnsembleData({e: FeatureData(features.of(e), guids, labels, sequences) for e in text_encoder_names(arch.text_encoder)})
    return FeatureData(features, guids, labels, sequences)


#: batches per run of shuffled rows sorted by token length (as Hugging Face's ``group_by_length``)
BUCKET_BATCHES = 16


def batch_order(data: Batches, batch_size: int, gen: torch.Generator | None = None, shuffle: bool = False,
                lengths: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Index batches: in order, or shuffled by ``gen``; with ``lengths``, bucketed by token count.

    Runs of :data:`BUCKET_BATCHES` shuffled batches are sorted by length, so a batch pads to far fewer positions.
    """
    n = len(data)
    if shuffle:
        order = torch.randperm(n, generator=gen)
    else:
        order = torch.arange(n)
    if shuffle and lengths is not None:
        batches = []
        run = batch_size * BUCKET_BATCHES
        for s in range(0, n, run):
            rows = order[s:s + run]
            rows = rows[torch.argsort(lengths[rows], descending=True, stable=True)]
            batches += [rows[k:k + batch_size] for k in range(0, len(rows), batch_size)]
        for k in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[k]
        return
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]
