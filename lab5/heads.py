"""The classifier heads by name (:data:`MODELS`): two unimodal heads and six fusions.

Each reads a batch dict (``text_pooled``, ``text_seq``, ``text_mask``, ``image_pooled``, ``image_seq``,
``image_mask``) and returns logits (B, 3).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ATTENTION_HEADS, ModelGroup
from .encoders import masked_mean
from .features import Dims

N_CLASSES = 3


def _proj(d_in: int, d_out: int, dropout: float, affine: bool = True) -> nn.Sequential:
    """LayerNorm, dropout, linear, GELU: encoder features of any scale to the head's width.

    ``affine=False`` stops gradients into the frozen input, saving a third of the backward pass on sequences.
    """
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.LayerNorm(d_in, elementwise_affine=affine), *drop, nn.Linear(d_in, d_out), nn.GELU())


def _mlp(d_in: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, N_CLASSES))


class Head(nn.Module):
    """Base class: which modalities a head reads."""

    uses_text = True
    uses_image = True
    uses_sequences = False  # True: reads text_seq / image_seq, not only the pooled vectors


class TextOnly(Head):
    """Text classifier: pooled text vector -> MLP."""

    uses_image = False

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        self.net = nn.Sequential(_proj(dims.text, arch.hidden, arch.dropout), nn.Dropout(arch.dropout), nn.Linear(arch.hidden, N_CLASSES))

    def forward(self, b: dict) -> torch.Tensor:
        return self.net(b["text_pooled"])


class ImageOnly(Head):
    """Image classifier: pooled CNN vector -> MLP."""

    uses_text = False

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        self.net = nn.Sequential(_proj(dims.image, arch.hidden, arch.dropout), nn.Dropout(arch.dropout), nn.Linear(arch.hidden, N_CLASSES))

    def forward(self, b: dict) -> torch.Tensor:
        return self.net(b["image_pooled"])


class ConcatFusion(Head):
    """The reference report's "catmodel" done properly: projected text and image vectors, concatenated, MLP."""

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        dt, di = dims.text, dims.image
        self.t, self.i = _proj(dt, arch.hidden, arch.dropout), _proj(di, arch.hidden, arch.dropout)
        self.out = _mlp(2 * arch.hidden, arch.hidden, arch.dropout)

    def forward(self, b: dict) -> torch.Tensor:
        return self.out(torch.cat([self.t(b["text_pooled"]), self.i(b["image_pooled"])], dim=-1))


class CrossAttentionFusion(Head):
    """Text tokens attend to image regions and regions to tokens; pooled streams and their product to an MLP.

    It reads no pooled text vector, so no lexicon scores.
    """

    uses_sequences = True

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        h = arch.attention_hidden
        dts, dis = dims.text_seq, dims.image_seq  # token/region widths (pooled text may carry extra lexicon scores)
        # no dropout on the long sequences or attention maps (it cost more CPU time than it helped)
        self.t, self.i = _proj(dts, h, 0.0, affine=False), _proj(dis, h, 0.0, affine=False)
        self.t2i = nn.MultiheadAttention(h, ATTENTION_HEADS, batch_first=True)
        self.i2t = nn.MultiheadAttention(h, ATTENTION_HEADS, batch_first=True)
        self.norm_t, self.norm_i = nn.LayerNorm(h), nn.LayerNorm(h)
        self.drop = nn.Dropout(arch.dropout)
        self.out = _mlp(3 * h, h, arch.dropout)

    def forward(self, b: dict, return_attention: bool = False):
        t, tm = self.t(b["text_seq"].float()), b["text_mask"].bool()
        i, im = self.i(b["image_seq"].float()), b["image_mask"].bool()
        t_att, w_t2i = self.t2i(t, i, i, key_padding_mask=~im, need_weights=return_attention)
        i_att, w_i2t = self.i2t(i, t, t, key_padding_mask=~tm, need_weights=return_attention)
        t = self.norm_t(t + self.drop(t_att))
        i = self.norm_i(i + self.drop(i_att))
        tp, ip = masked_mean(t, tm), masked_mean(i, im)
        logits = self.out(torch.cat([tp, ip, tp * ip], dim=-1))
        return (logits, w_t2i, w_i2t) if return_attention else logits


class ReferenceGate(Head):
    """A faithful copy of the reference report's "CMA" design (a gate over two pooled vectors), for the ablation.

    Its bugs (re-tokenising inside forward, an extra L2 loss term) are not copied.
    """

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        dt, di = dims.text, dims.image
        self.t = nn.Sequential(nn.Linear(dt, 512), nn.ReLU(), nn.Dropout(0.1))
        self.i = nn.Sequential(nn.Linear(di, 512), nn.ReLU(), nn.Dropout(0.1))
        self.att = nn.Linear(1024, 512)
        self.out = nn.Sequential(nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, N_CLASSES))

    def forward(self, b: dict) -> torch.Tensor:
        t, i = self.t(b["text_pooled"]), self.i(b["image_pooled"])
        w = torch.softmax(self.att(torch.cat([i, t], dim=-1)), dim=-1)
        return self.out(torch.cat([i * w, t * w], dim=-1))


class GatedFusion(Head):
    """Gated multimodal unit: h = z * tanh(Wt t) + (1 - z) * tanh(Wi i), with a learned per-feature gate z."""

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        dt, di = dims.text, dims.image
        h = arch.hidden
        self.nt, self.ni = nn.LayerNorm(dt), nn.LayerNorm(di)
        self.t, self.i = nn.Linear(dt, h), nn.Linear(di, h)
        self.z = nn.Linear(dt + di, h)
        self.drop = nn.Dropout(arch.dropout)
        self.out = _mlp(h, h, arch.dropout)

    def forward(self, b: dict, return_gate: bool = False):
        t, i = self.drop(self.nt(b["text_pooled"])), self.drop(self.ni(b["image_pooled"]))
        z = torch.sigmoid(self.z(torch.cat([t, i], dim=-1)))
        logits = self.out(z * torch.tanh(self.t(t)) + (1 - z) * torch.tanh(self.i(i)))
        return (logits, z) if return_gate else logits


class LateFusion(Head):
    """Text and image classifiers whose probabilities are mixed by a learned weight; returns the mixture's log."""

    def __init__(self, dims: Dims, arch: ModelGroup):
        super().__init__()
        self.text, self.image = TextOnly(dims, arch), ImageOnly(dims, arch)
        self.mix = nn.Parameter(torch.tensor(1.0))  # sigmoid(1) = 0.73 to the text side at the start

    def forward(self, b: dict) -> torch.Tensor:
        w = torch.sigmoid(self.mix)
        p = w * torch.softmax(self.text(b), -1) + (1 - w) * torch.softmax(self.image(b), -1)
        return torch.log(p.clamp_min(1e-8))


MODELS: dict[str, type[Head]] = {
    "text": TextOnly,
    "image": ImageOnly,
    "concat": ConcatFusion,
    "cross_attention": CrossAttentionFusion,
    "reference_gate": ReferenceGate,
    "gated": GatedFusion,
    "late": LateFusion,
}

