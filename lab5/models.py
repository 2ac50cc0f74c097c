"""Classifiers over text and image features: unimodal heads and four fusions.

Every head reads a batch dict of features::

    text_pooled (B, Dt)   text_seq (B, L, Dt)   text_mask (B, L)
    image_pooled (B, Di)  image_seq (B, R, Di)  image_mask (B, R)

from the feature cache (the default), or produced on the fly by the encoders when fine-tuning
(:class:`Classifier` with encoders attached). All return logits (B, 3).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from . import encoders
from .config import Config, model_problem, text_encoder_names
from .encoders import masked_mean
from .errors import ConfigError
from .features import Dims
from .runtime import reproducible

N_CLASSES = 3


def _proj(d_in: int, d_out: int, dropout: float, affine: bool = True) -> nn.Sequential:
    """LayerNorm, dropout, linear, GELU: brings encoder features of any scale to the head's width.

    ``affine=False``: a LayerNorm without its own scale and shift, which the linear layer after it can absorb;
    then no gradient flows back into the (frozen, cached) input, which on token sequences saves a third of the
    projection's backward pass."""
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

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        self.net = nn.Sequential(_proj(dims.text, cfg.hidden, cfg.dropout), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, N_CLASSES))

    def forward(self, b: dict) -> torch.Tensor:
        return self.net(b["text_pooled"])


class ImageOnly(Head):
    """Image classifier: pooled CNN vector -> MLP."""

    uses_text = False

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        self.net = nn.Sequential(_proj(dims.image, cfg.hidden, cfg.dropout), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, N_CLASSES))

    def forward(self, b: dict) -> torch.Tensor:
        return self.net(b["image_pooled"])


class ConcatFusion(Head):
    """The reference report's "catmodel" done properly: projected text and image vectors, concatenated, MLP."""

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        dt, di = dims.text, dims.image
        self.t, self.i = _proj(dt, cfg.hidden, cfg.dropout), _proj(di, cfg.hidden, cfg.dropout)
        self.out = _mlp(2 * cfg.hidden, cfg.hidden, cfg.dropout)

    def forward(self, b: dict) -> torch.Tensor:
        return self.out(torch.cat([self.t(b["text_pooled"]), self.i(b["image_pooled"])], dim=-1))


class CrossAttentionFusion(Head):
    """Text tokens attend to image regions and regions attend to tokens (multi-head, padding masked).

    Each stream gets a residual + LayerNorm, is mean-pooled over its valid positions, and the two pooled
    vectors with their product are classified by an MLP.
    """

    uses_sequences = True

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        h = cfg.attention_hidden
        dts, dis = dims.text_seq, dims.image_seq  # token/region widths (pooled text may carry extra lexicon scores)
        # no dropout on the (long) input sequences or attention maps: it cost more CPU time than it helped;
        # the pooled vectors are dropped out before the classifier instead; the sequences' LayerNorms carry no
        # scale and shift of their own (the projection absorbs them), which spares the backward pass into them
        self.t, self.i = _proj(dts, h, 0.0, affine=False), _proj(dis, h, 0.0, affine=False)
        self.t2i = nn.MultiheadAttention(h, cfg.heads, batch_first=True)
        self.i2t = nn.MultiheadAttention(h, cfg.heads, batch_first=True)
        self.norm_t, self.norm_i = nn.LayerNorm(h), nn.LayerNorm(h)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = _mlp(3 * h, h, cfg.dropout)

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
    """A faithful copy of the reference report's "CMA" design, kept as a named variant for the ablation.

    Text and image -> 512 (Linear, ReLU, Dropout 0.1); weights = softmax(Linear(1024->512)([img; txt])) multiplied
    element-wise into both 512-d vectors; concat -> Linear 1024->512 -> ReLU -> Linear 512->3. It is a gate over
    two pooled vectors, not attention across tokens and regions. (Its bugs - re-tokenising inside forward and an
    extra L2 term in the loss - are not copied.)
    """

    def __init__(self, dims: Dims, cfg: Config):
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
    """Gated multimodal unit: a learned per-feature gate z mixes tanh-projected text and image,
    h = z * tanh(Wt t) + (1 - z) * tanh(Wi i), so each sample decides how much to trust each modality."""

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        dt, di = dims.text, dims.image
        h = cfg.hidden
        self.nt, self.ni = nn.LayerNorm(dt), nn.LayerNorm(di)
        self.t, self.i = nn.Linear(dt, h), nn.Linear(di, h)
        self.z = nn.Linear(dt + di, h)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = _mlp(h, h, cfg.dropout)

    def forward(self, b: dict, return_gate: bool = False):
        t, i = self.drop(self.nt(b["text_pooled"])), self.drop(self.ni(b["image_pooled"]))
        z = torch.sigmoid(self.z(torch.cat([t, i], dim=-1)))
        logits = self.out(z * torch.tanh(self.t(t)) + (1 - z) * torch.tanh(self.i(i)))
        return (logits, z) if return_gate else logits


class LateFusion(Head):
    """Late fusion: a text classifier and an image classifier whose probabilities are mixed with a learned
    weight; the output is the log of the mixture (so cross-entropy on it is the mixture's likelihood)."""

    def __init__(self, dims: Dims, cfg: Config):
        super().__init__()
        self.text, self.image = TextOnly(dims, cfg), ImageOnly(dims, cfg)
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


class TextTop(nn.Module):
    """The top transformer layers of the text encoder, fine-tuned on cached states of the layer below them.

    It turns the cached ``text_seq`` (states after layer ``n - k``) into last-layer states and recomputes the
    pooled vector from them; columns of ``text_pooled`` beyond the encoder width (the lexicon scores) are kept.
    Fine-tuning the top of the encoder this way costs a fraction of running the whole encoder on each step.
    """

    def __init__(self, layers: nn.ModuleList):
        super().__init__()
        self.layers = copy.deepcopy(layers).requires_grad_(True)

    @classmethod
    def from_encoder(cls, name: str, k: int, cache=None) -> "TextTop":
        """A trainable copy of the top ``k`` layers of text encoder ``name`` (``cache``: where mpnet is unpacked)."""
        return cls(encoders.text_encoder(name, cache).model.encoder.layer[-k:])

    def forward(self, b: dict) -> dict:
        mask = b["text_mask"].bool()
        h = b["text_seq"].float()
        additive = (~mask)[:, None, None, :].to(h.dtype) * torch.finfo(h.dtype).min
        for layer in self.layers:
            h = layer(h, attention_mask=additive)
            h = h[0] if isinstance(h, tuple) else h
        d = h.shape[-1]
        pooled = torch.cat([masked_mean(h, mask), b["text_pooled"][:, d:].to(h.dtype)], dim=-1)
        return {**b, "text_seq": h, "text_pooled": pooled}


class Classifier(nn.Module):
    """A head, with the encoders attached when fine-tuning end to end.

    With encoders, a batch holds ``input_ids``, ``attention_mask`` and ``pixels`` and the encoders produce the
    feature dict; without, the batch already is the feature dict (from the cache). With ``text_top``, the cached
    text states come from a lower layer and pass through the trainable top layers first.
    """

    def __init__(self, head: Head, text_encoder: nn.Module | None = None, image_encoder: nn.Module | None = None,
                 text_top: TextTop | None = None):
        super().__init__()
        self.head, self.text_encoder, self.image_encoder, self.text_top = head, text_encoder, image_encoder, text_top

    def encode(self, b: dict) -> dict:
        b = dict(b)
        if self.text_encoder is not None and "input_ids" in b:
            b["text_pooled"], b["text_seq"], b["text_mask"] = self.text_encoder(b["input_ids"], b["attention_mask"])
        if self.image_encoder is not None and "pixels" in b:
            b["image_pooled"], b["image_seq"], b["image_mask"] = self.image_encoder(b["pixels"])
        if self.text_top is not None and "text_seq" in b:
            b = self.text_top(b)
        return b

    def forward(self, b: dict) -> torch.Tensor:
        return self.head(self.encode(b))


class Ensemble(nn.Module):
    """Several classifiers trained one after another on the same rows; the output is the log of their mean
    probabilities (so argmax is the averaged vote). Any other decision rule is a :class:`lab5.decisions.Decision`
    over the members' probabilities, kept beside the model."""

    def __init__(self, members: dict[str, Classifier], text_suffixes: dict[str, str] | None = None):
        super().__init__()
        self.members = nn.ModuleDict(members)
        self.text_suffixes = text_suffixes or {}  # member -> key suffix of its text features ("" or absent: the first)

    def routed_members(self) -> list[tuple[str, nn.Module]]:
        """(name, module) per member, each module reading the ensemble's batches as that member should (a member
        on a further text encoder is wrapped so that it finds its own features under the plain keys)."""
        return [(n, _Routed(m, self.text_suffixes[n]) if self.text_suffixes.get(n) else m) for n, m in self.members.items()]

    def forward(self, b: dict) -> torch.Tensor:
        p = torch.stack([torch.softmax(m(b).float(), -1) for _, m in self.routed_members()]).mean(0)
        return torch.log(p.clamp_min(1e-8))


def members_of(model: nn.Module) -> dict[str, nn.Module]:
    """An :class:`Ensemble`'s members by name, each reading the ensemble's batches as that member should (see
    :meth:`Ensemble.routed_members`); empty for a single classifier."""
    return dict(model.routed_members()) if isinstance(model, Ensemble) else {}


class _Routed(nn.Module):
    """A member of an :class:`Ensemble` fed with the features of its own text encoder (keys ending in ``suffix``)."""

    def __init__(self, member: nn.Module, suffix: str):
        super().__init__()
        self.member, self.suffix = member, suffix

    def forward(self, b: dict) -> torch.Tensor:
        return self.member({**b, **{k[:-len(self.suffix)]: v for k, v in b.items() if k.endswith(self.suffix)}})


def member_names(model: str) -> list[str]:
    """The heads a model name stands for: ``"late"`` -> ``["late"]``, ``"late+gated"`` -> an ensemble of two."""
    if problem := model_problem(model):
        raise ConfigError(problem)
    return model.split("+")


def text_key_suffix(text_encoder: str) -> str:
    """Suffix of the batch keys that carry a further text encoder's features (``text_pooled@mpnet``)."""
    return "@" + text_encoder.replace(".", "_")


def ensemble_members(cfg: Config) -> dict[str, tuple[str, str]]:
    """Member name -> (head, text encoder) of ``cfg``: every head of ``cfg.model`` on every text encoder of
    ``cfg.text_encoder``. With one text encoder the members are named by their head alone (``late``); with several,
    ``late@mpnet``."""
    heads, encoders = member_names(cfg.model), text_encoder_names(cfg.text_encoder)
    if len(encoders) == 1:
        return {h: (h, encoders[0]) for h in heads}
    return {f"{h}{text_key_suffix(e)}": (h, e) for e in encoders for h in heads}


def uses_sequences(model: str) -> bool:
    """Whether any head of ``model`` reads token / region sequences."""
    return any(MODELS[n].uses_sequences for n in member_names(model))


def build_head(name: str, dims: Dims, cfg: Config) -> Head:
    """A fresh head by name (see :data:`MODELS`; one head, checked like any model name)."""
    (head,) = member_names(name)
    return MODELS[head](dims, cfg)


def build_model(cfg: Config, dims: Dims | dict[str, Dims], encoders: tuple | None = None) -> nn.Module:
    """A freshly initialised (seeded) model of ``cfg``: a :class:`Classifier`, with the encoders attached when
    fine-tuning end to end, or an :class:`Ensemble` of classifiers when ``cfg.model`` or ``cfg.text_encoder`` joins
    names with ``+`` (``dims``: by text encoder, as :meth:`lab5.features.Features.dims` gives them, when several)."""
    members = ensemble_members(cfg)
    first = text_encoder_names(cfg.text_encoder)[0]

    def dims_of(encoder: str) -> Dims:
        return dims if isinstance(dims, Dims) else dims["" if encoder == first else encoder]

    if len(members) == 1:
        model = _classifier(cfg, dims_of(first), encoders)
    else:
        model = Ensemble({n: _classifier(cfg.replace(model=h, text_encoder=e), dims_of(e), None) for n, (h, e) in members.items()},
                         {n: text_key_suffix(e) for n, (h, e) in members.items() if e != first})
    model.dims = dims  # the input widths it was built for (saved with checkpoints)
    return model


def _classifier(cfg: Config, dims: Dims, encoders: tuple | None) -> Classifier:
    with reproducible(cfg.seed):  # the initial weights depend on the seed alone
        head = build_head(cfg.model, dims, cfg)
    if encoders is None:
        top = TextTop.from_encoder(cfg.text_encoder, cfg.text_top, cfg.cache) if cfg.text_top and head.uses_text else None
        return Classifier(head, text_top=top)
    t, i = encoders
    return Classifier(head, t if head.uses_text else None, i if head.uses_image else None)
