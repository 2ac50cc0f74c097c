"""All configuration in one dataclass: data paths, encoders, model and training hyper-parameters."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

#: Root of the repository (the folder holding ``lab5/``); figures and predictions go here.
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``LAB5_DATA`` if set, else ``./data`` (the repository's ``data/`` when run from ``notebooks/``)."""
    if "LAB5_DATA" in os.environ:
        return Path(os.environ["LAB5_DATA"])
    return Path("data") if Path("data").is_dir() else REPO_ROOT / "data"


def default_cache_dir() -> Path:
    """``LAB5_CACHE`` if set, else ``.cache/`` in the repository (git-ignored)."""
    return Path(os.environ.get("LAB5_CACHE", REPO_ROOT / ".cache"))


class ConfigError(ValueError):
    """A bad option value (unknown model, encoder, device, ...); the CLI turns it into exit code 2."""


@dataclass
class Config:
    """Everything a run depends on. Every command and notebook builds one of these."""

    data: Path = field(default_factory=default_data_dir, metadata={"help": "dataset folder (LAB5_DATA, default ./data)"})
    cache: Path = field(default_factory=default_cache_dir, metadata={"help": "feature cache folder (LAB5_CACHE)"})
    text_encoder: str = field(default="minilm", metadata={"help": "minilm, or a BERT-family Hugging Face id / local folder"})
    image_encoder: str = field(default="efficientnet-lite0", metadata={"help": "efficientnet-lite0 | resnet50 | resnet50-scratch"})
    model: str = field(default="cross_attention+gated+late", metadata={"help": "model name (see `lab5.models.MODELS`); names joined by + make an ensemble"})
    text_features: str = field(default="tokens+lexicon", metadata={"help": "tokens: encoder states only; tokens+lexicon: add VADER lexicon scores"})
    text_clean: str = field(default="none", metadata={"help": "none | tweet: links, handles, RT prefixes and hashtags normalised before encoding"})
    max_length: int = field(default=64, metadata={"help": "text tokens kept per tweet"})
    image_size: int = field(default=224, metadata={"help": "image side fed to the CNN"})
    hidden: int = field(default=256, metadata={"help": "width of the fusion layers"})
    attention_hidden: int = field(default=128, metadata={"help": "width of the cross-attention layers (kept small: CPU time)"})
    heads: int = field(default=4, metadata={"help": "attention heads in cross-attention fusion"})
    dropout: float = field(default=0.3, metadata={"help": "dropout in the heads"})
    epochs: int = field(default=30, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=64, metadata={"help": "batch size"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate of the heads"})
    encoder_lr: float = field(default=2e-5, metadata={"help": "learning rate of encoder weights when fine-tuning"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (in the optimiser only)"})
    warmup: float = field(default=0.1, metadata={"help": "fraction of steps spent warming up"})
    patience: int = field(default=5, metadata={"help": "epochs without a better validation macro-F1 before stopping"})
    balance: str = field(default="none", metadata={"help": "none | weights (class-weighted loss) | sampler (balanced sampling)"})
    decision: str = field(default="argmax", metadata={"help": "argmax | tuned: per-class logit offsets that maximise macro-F1 on the validation rows"})
    clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping (0 turns it off)"})
    text_top: int = field(default=0, metadata={"help": "top text-encoder layers fine-tuned on cached states of the layer below (0: frozen features)"})
    text_top_lr: float = field(default=1e-4, metadata={"help": "learning rate of the fine-tuned top text layers"})
    finetune: bool = field(default=False, metadata={"help": "train end to end through the encoders instead of cached features"})
    finetune_layers: int = field(default=2, metadata={"help": "with --finetune: top text layers (and last CNN blocks) left trainable; 0 means all"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps (0: no limit); for smoke runs"})
    device: str = field(default="auto", metadata={"help": "cpu | cuda | auto"})
    seed: int = field(default=0, metadata={"help": "seed of every random draw"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads (fixed, so results repeat bit for bit)"})
    folds: int = field(default=5, metadata={"help": "folds of cross-validation"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-friendly dict (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones take defaults."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: (Path(v) if k in ("data", "cache") else v) for k, v in d.items() if k in names}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
