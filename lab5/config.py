"""All configuration in one dataclass, every value checked in :meth:`Config.__post_init__`.

Paths default from ``LAB5_DATA``, ``LAB5_CACHE``, ``LAB5_OUT`` and the working directory, never the install folder.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

#: the heads of :data:`lab5.heads.MODELS` (named here so that a config is checked without importing torch)
MODEL_NAMES = ("text", "image", "concat", "cross_attention", "reference_gate", "gated", "late")
#: attention heads of cross-attention fusion (its width, ``attention_hidden``, must be a multiple)
ATTENTION_HEADS = 4
#: the image encoders of :data:`lab5.encoders.IMAGE_ENCODERS`
IMAGE_ENCODER_NAMES = ("efficientnet-lite0", "resnet50", "resnet50-scratch")
#: the input side each image encoder is built for (what ``--image-size 0`` means)
NATIVE_IMAGE_SIZE = {"efficientnet-lite0": 224, "resnet50": 224, "resnet50-scratch": 224}
FIXED_SIZE_ENCODERS = ("efficientnet-lite0",)
CHOICES = {
    "text_features": ("tokens", "tokens+lexicon"),
    "device": ("cpu", "cuda", "auto"),
    "image_encoder": IMAGE_ENCODER_NAMES,
}


#: every :class:`Config` field in one of three groups, the command line's option headings
GROUPS = {
    "run": ("data", "cache", "out_dir", "progress", "jobs", "device"),
    "model": ("text_encoder", "image_encoder", "model", "text_features", "max_length", "image_size", "hidden",
              "attention_hidden", "dropout", "finetune", "finetune_layers"),
    "training": ("epochs", "batch_size", "lr", "encoder_lr", "weight_decay", "train_rows", "seed", "fold_seed", "folds"),
}
#: read-only views of one group, what a layer is given: a head gets :class:`ModelGroup`, the training loop
#: :class:`TrainingGroup` (:attr:`Config.model_group`, :attr:`Config.training_group`); neither sees paths
ModelGroup = namedtuple("ModelGroup", GROUPS["model"])
TrainingGroup = namedtuple("TrainingGroup", GROUPS["training"])
#: the run fields no result depends on (the device's arithmetic rounds its own way), kept out of cache keys
RUN_FIELDS = tuple(f for f in GROUPS["run"] if f != "device")
FLOATS = ("dropout", "lr", "encoder_lr", "weight_decay")
#: upper bounds: BERT-family encoders have 512 positions; seeds are 32-bit (NumPy)
AT_MOST = {"max_length": 512, "seed": 2**32 - 1, "fold_seed": 2**32 - 1}


def model_problem(model: str) -> str | None:
    """Why ``model`` (head names joined by ``+``) names no model, or None: the one home of this rule."""
    names = model.split("+")
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or len(set(names)) != len(names):
        problem = f"unknown model {unknown[0]!r}" if unknown else f"model {model!r} names a head twice"
        return f"{problem}; choose one of {', '.join(MODEL_NAMES)}, or join several with + for an ensemble"
    return None


def image_size_problem(image_encoder: str, image_size: int) -> str | None:
    """Why ``image_size`` does not suit ``image_encoder`` (EfficientNet-Lite pads statically), or None."""
    native = NATIVE_IMAGE_SIZE.get(image_encoder)
    if image_encoder in FIXED_SIZE_ENCODERS and image_size > 0 and image_size != native:
        return f"{image_encoder} is built for {native}x{native} inputs (static padding); use --image-size {native} or 0"
    return None


def text_encoder_names(text_encoder: str) -> list[str]:
    """The text encoders a ``--text-encoder`` value names: one, or several joined with ``+``."""
    return text_encoder.split("+")


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder upwards from ``start`` with ``notebooks/`` and ``pyproject.toml``; None outside one."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return None


def _home() -> Path:
    """Where relative defaults live: the project folder, or the current directory outside a project."""
    return find_project() or Path.cwd()


def default_data_dir() -> Path:
    """``LAB5_DATA`` if set, else the project's ``data/`` (found from the current directory)."""
    return Path(os.environ["LAB5_DATA"]) if os.environ.get("LAB5_DATA") else _home() / "data"


def default_cache_dir() -> Path:
    """``LAB5_CACHE`` if set, else the project's ``.cache/`` (git-ignored)."""
    return Path(os.environ["LAB5_CACHE"]) if os.environ.get("LAB5_CACHE") else _home() / ".cache"


def default_out_dir() -> Path | None:
    """``LAB5_OUT`` if set, else None: :func:`lab5.outputs.output_root` then decides from the dataset."""
    return Path(os.environ["LAB5_OUT"]) if os.environ.get("LAB5_OUT") else None


@dataclass
class Config:
    """Everything a run depends on. Every command and notebook builds one of these; bad values raise ConfigError."""

    data: Path = field(default_factory=default_data_dir, metadata={"help": "dataset folder (LAB5_DATA, default ./data)"})
    cache: Path = field(default_factory=default_cache_dir, metadata={"help": "cache folder: features, CV results, splits of other datasets (LAB5_CACHE)"})
    out_dir: Path | None = field(default_factory=default_out_dir, metadata={"help": "output folder (LAB5_OUT); default: the project folder for the course data, runs/<dataset>-<fingerprint>/ for any other"})
    text_encoder: str = field(default="minilm+mpnet", metadata={"help": "minilm | mpnet, or a BERT-family Hugging Face id / local folder; several joined with + make an ensemble with every head on each"})
    image_encoder: str = field(default="efficientnet-lite0", metadata={"help": "efficientnet-lite0 | resnet50 | resnet50-scratch (resnet50 needs torchvision's weights on the machine)"})
    model: str = field(default="cross_attention+gated+late", metadata={"help": "model name (see `lab5.heads.MODELS`); names joined by + make an ensemble"})
    text_features: str = field(default="tokens+lexicon", metadata={"help": "tokens: encoder states only (the pooled vector: the last layer's mean); tokens+lexicon: add the VADER lexicon scores"})
    max_length: int = field(default=64, metadata={"help": "text tokens kept per tweet"})
    image_size: int = field(default=0, metadata={"help": "image side fed to the CNN (0: the encoder's own, 224 px)"})
    hidden: int = field(default=256, metadata={"help": "width of the fusion layers"})
    attention_hidden: int = field(default=128, metadata={"help": "width of the cross-attention layers (kept small: CPU time)"})
    dropout: float = field(default=0.3, metadata={"help": "dropout in the heads"})
    epochs: int = field(default=3, metadata={"help": "training epochs (3: chosen by 5-fold CV; the search of notebook 5)"})
    batch_size: int = field(default=64, metadata={"help": "batch size"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate of the heads"})
    encoder_lr: float = field(default=2e-5, metadata={"help": "learning rate of encoder weights when fine-tuning"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (in the optimiser only)"})
    train_rows: int = field(default=0, metadata={"help": "train on a seeded, stratified subset of this many of the training rows (0: all of them; in CV, of each training part); for learning curves"})
    finetune: bool = field(default=False, metadata={"help": "train end to end through the encoders instead of cached features"})
    finetune_layers: int = field(default=2, metadata={"help": "with --finetune: top text layers (and last CNN blocks) left trainable; 0 means all"})
    device: str = field(default="auto", metadata={"help": "cpu | cuda | auto"})
    seed: int = field(default=0, metadata={"help": "seed of the training: initial weights, batch order, dropout (the data draws have --fold-seed)"})
    fold_seed: int = field(default=0, metadata={"help": "seed of the data draws: the CV folds, --train-rows subsets (--seed seeds the training)"})
    jobs: int = field(default=2, metadata={"help": "independent trainings (CV folds, ensemble members) run at once, each in its own process on one thread; the results do not depend on it (1: one after another in this process)"})
    folds: int = field(default=5, metadata={"help": "folds of cross-validation"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        bad = [f"--{_flag(k)} must be a folder, not {v!r}" for k, v in
               (("data", self.data), ("cache", self.cache), ("out_dir", self.out_dir or ".")) if not isinstance(v, (str, Path))]
        if bad:
            raise ConfigError(bad)
        self.data, self.cache = Path(self.data), Path(self.cache)
        self.out_dir = Path(self.out_dir) if self.out_dir is not None else None
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def problems(self) -> list[str]:
        """Every bad value, one line each (empty when the config is sound)."""
        out = []
        for name, kind in field_types().items():
            v = getattr(self, name)
            want = {int: int, float: (int, float), bool: bool, str: str}.get(kind)
            if want and (not isinstance(v, want) or (want is not bool and isinstance(v, bool))):
                out.append(f"--{_flag(name)} must be {kind.__name__}, not {v!r}")
        if out:
            return out
        infinite = [f"--{_flag(k)} must be a finite number, not {getattr(self, k)}" for k in FLOATS
                    if not math.isfinite(getattr(self, k))]
        if infinite:
            return infinite
        at_least = {"seed": 0, "fold_seed": 0, "max_length": 1, "image_size": 0, "hidden": 1, "attention_hidden": 1, "epochs": 1,
                    "batch_size": 1, "finetune_layers": 0, "train_rows": 0, "jobs": 1, "folds": 2, "weight_decay": 0}
        out += [f"--{_flag(k)} must be at least {lo}, not {getattr(self, k)}" for k, lo in at_least.items() if getattr(self, k) < lo]
        out += [f"--{_flag(k)} must be at most {hi}, not {getattr(self, k)}" for k, hi in AT_MOST.items() if getattr(self, k) > hi]
        out += [f"--{_flag(k)} must be above 0, not {getattr(self, k)}" for k in ("lr", "encoder_lr")
                if not getattr(self, k) > 0]
        out += [f"--{_flag(k)} must be in [0, 1), not {getattr(self, k)}" for k in ("dropout",)
                if not 0 <= getattr(self, k) < 1]
        out += [f"unknown --{_flag(k)} {getattr(self, k)!r}; use {', '.join(c)}" for k, c in CHOICES.items()
                if getattr(self, k) not in c]
        names = self.model.split("+")
        if problem := model_problem(self.model):
            out.append(problem)
        encoders = text_encoder_names(self.text_encoder)
        if not all(encoders) or len(set(encoders)) != len(encoders):
            out.append(f"--text-encoder {self.text_encoder!r} must name one encoder, or several different ones joined with +")
        elif len(encoders) > 1 and self.finetune:
            out.append("--finetune fine-tunes one text encoder; name one in --text-encoder")
        if self.attention_hidden % ATTENTION_HEADS:
            out.append(f"--attention-hidden {self.attention_hidden} is not a multiple of the {ATTENTION_HEADS} attention heads")
        if 0 < self.image_size < 32:
            out.append(f"--image-size must be 0 (the encoder's own) or at least 32, not {self.image_size}")
        if problem := image_size_problem(self.image_encoder, self.image_size):
            out.append(problem)
        if self.finetune and len(names) > 1:
            out.append("ensembles train on cached features; drop --finetune or name one model")
        if self.device == "cuda" and not _cuda_available():
            out.append("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
        return out

    @property
    def model_group(self) -> ModelGroup:
        """What the model is: encoders, heads, widths, dropout."""
        return ModelGroup(**{f: getattr(self, f) for f in ModelGroup._fields})

    @property
    def training_group(self) -> TrainingGroup:
        """How it trains: epochs, batch size, learning rates, weight decay, seeds, folds."""
        return TrainingGroup(**{f: getattr(self, f) for f in TrainingGroup._fields})

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (checked like any other config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-friendly dict (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "Config":
        """Inverse of :meth:`to_dict`, with non-None ``overrides`` applied; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {**d, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**{k: v for k, v in given.items() if k in names and v is not None})

    def result_fields(self) -> dict:
        """The fields a result depends on, for cache keys: all but :data:`RUN_FIELDS`."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_FIELDS}


@functools.cache
def field_types() -> dict[str, type]:
    """Each Config field's type, evaluated (``int``, ``Path | None``, ...), not as annotation strings."""
    return typing.get_type_hints(Config)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _cuda_available() -> bool:
    import torch  # only when CUDA is asked for

    return torch.cuda.is_available()
