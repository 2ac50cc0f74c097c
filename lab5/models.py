"""Models built from :mod:`lab5.heads`: a :class:`Classifier` (with encoder layers when fine-tuning) or an
:class:`Ensemble` of classifiers, one per text encoder. All return logits (B, 3).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import Config, ModelGroup, model_problem, text_encoder_names
from .decisions import mean_probabilities
from .errors import ConfigError
from .features import Dims
from .heads import MODELS, Head
from .runtime import reproducible


class Classifier(nn.Module):
    """A head, with the encoders attached when fine-tuning end to end (then a batch holds raw inputs).

    ``dims``: the input widths it was built for, by text encoder (saved with checkpoints).
    """

    def __init__(self, head: Head, dims: dict[str, Dims], text_encoder: nn.Module | None = None,
                 image_encoder: nn.Module | None = None):
        super().__init__()
        self.head, self.text_encoder, self.image_encoder = head, text_encoder, image_encoder
        self.dims = dict(dims)

    def encode(self, b: dict) -> dict:
        b = dict(b)
        if self.text_encoder is not None and "input_ids" in b:
            b["text_pooled"], b["text_seq"], b["text_mask"] = self.text_encoder(b["input_ids"], b["attention_mask"])
        if self.image_encoder is not None and "pixels" in b:
            b["image_pooled"], b["image_seq"], b["image_mask"] = self.image_encoder(b["pixels"])
        return b

    def forward(self, b: dict) -> torch.Tensor:
        return self.head(self.encode(b))


class Ensemble(nn.Module):
    """Classifiers each on its own text encoder's features; returns the log of the members' mean probabilities."""

    def __init__(self, members: dict[str, Classifier], text_encoders: dict[str, str]):
        super().__init__()
        self.members = nn.ModuleDict(members)
        self.text_encoders = dict(text_encoders)

    @property
    def dims(self) -> dict[str, Dims]:
        """The input widths by text encoder, as the members were built for them."""
        return {e: d for m in self.members.values() for e, d in m.dims.items()}

    def forward(self, b: dict[str, dict]) -> torch.Tensor:
        p = mean_probabilities([torch.softmax(m(b[self.text_encoders[n]]).float(), -1) for n, m in self.members.items()])
        return torch.log(p.clamp_min(1e-8))


def members_of(model: nn.Module) -> dict[str, tuple[Classifier, str]]:
    """An :class:`Ensemble`'s members by name with their text encoders; empty for a single classifier."""
    if not isinstance(model, Ensemble):
        return {}
    return {n: (m, model.text_encoders[n]) for n, m in model.members.items()}


def member_names(model: str) -> list[str]:
    """The heads a model name stands for: ``"late"`` -> ``["late"]``, ``"late+gated"`` -> an ensemble of two."""
    if problem := model_problem(model):
        raise ConfigError(problem)
    return model.split("+")


def ensemble_members(cfg: Config | ModelGroup) -> dict[str, tuple[str, str]]:
    """Member name -> (head, text encoder): every head on every text encoder (``late`` or ``late@mpnet``)."""
    heads, encoders = member_names(cfg.model), text_encoder_names(cfg.text_encoder)
    if len(encoders) == 1:
        return {h: (h, encoders[0]) for h in heads}
    return {f"{h}@{e.replace('.', '_')}": (h, e) for e in encoders for h in heads}


def member_configs(cfg: Config) -> dict[str, Config]:
    """Member name -> the config that member trains with alone (so its CV run is its own)."""
    return {n: cfg.replace(model=h, text_encoder=e) for n, (h, e) in ensemble_members(cfg).items()}


def uses_sequences(model: str) -> bool:
    """Whether any head of ``model`` reads token / region sequences."""
    return any(MODELS[n].uses_sequences for n in member_names(model))


def build_head(name: str, dims: Dims, arch: ModelGroup) -> Head:
    """A fresh head by name (see :data:`lab5.heads.MODELS`; one head, checked like any model name)."""
    (head,) = member_names(name)
    return MODELS[head](dims, arch)


def build_model(cfg: Config, dims: dict[str, Dims], encoders: tuple | None = None) -> nn.Module:
    """A seeded fresh model of ``cfg`` for input widths ``dims``: a :class:`Classifier` or an :class:`Ensemble`."""
    members = ensemble_members(cfg)
    if missing := [e for e in text_encoder_names(cfg.text_encoder) if e not in dims]:
        raise ValueError(f"no input widths for text encoder {missing[0]!r} (given: {', '.join(dims)})")
    configs = member_configs(cfg)
    if len(members) == 1:
        ((own, (_, encoder)),) = zip(configs.values(), members.values())
        return _classifier(own, {encoder: dims[encoder]}, encoders)
    return Ensemble({n: _classifier(configs[n], {e: dims[e]}, None) for n, (h, e) in members.items()},
                    {n: e for n, (h, e) in members.items()})


def _classifier(cfg: Config, dims: dict[str, Dims], encoders: tuple | None) -> Classifier:
    with reproducible(cfg.seed):  # the initial weights depend on the seed alone
        head = build_head(cfg.model, dims[cfg.text_encoder], cfg.model_group)
    if encoders is None:
        return Classifier(head, dims)
    t, i = encoders
    return Classifier(head, dims, t if head.uses_text else None, i if head.uses_image else None)
