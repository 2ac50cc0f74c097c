"""All configuration in one dataclass, every value checked in one place (:meth:`Config.__post_init__`).

Paths default from the environment and the current working directory, never from where the package is installed:
``LAB5_DATA`` (the dataset), ``LAB5_CACHE`` (caches), ``LAB5_OUT`` (outputs; see :mod:`lab5.outputs`).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

#: the heads of :data:`lab5.heads.MODELS` (named here so that a config is checked without importing torch)
MODEL_NAMES = ("text", "image", "concat", "cross_attention", "reference_gate", "gated", "late", "label_rule")
#: the image encoders of :data:`lab5.encoders.IMAGE_ENCODERS`
IMAGE_ENCODER_NAMES = ("efficientnet-lite0", "efficientnet-lite2", "resnet50", "resnet50-scratch")
#: the input side each image encoder is built for (what ``--image-size 0`` means); the EfficientNet-Lite models pad
#: statically and accept no other size
NATIVE_IMAGE_SIZE = {"efficientnet-lite0": 224, "efficientnet-lite2": 260, "resnet50": 224, "resnet50-scratch": 224}
FIXED_SIZE_ENCODERS = ("efficientnet-lite0", "efficientnet-lite2")
#: how members' probabilities are combined (:class:`lab5.decisions.Decision`), each optionally ``+offsets``
COMBINERS = ("mean", "temperature", "stack")
#: what the offsets of a decision maximise on the rows they are tuned on: macro-F1, or the mean of accuracy and
#: macro-F1 (the course's two scores, weighed alike)
OFFSET_OBJECTIVES = ("macro_f1", "accuracy+macro_f1")
CHOICES = {
    "text_features": ("tokens", "tokens+lexicon", "tokens+lexicon+afinn", "layers+lexicon"),
    "text_clean": ("none", "tweet"),
    "balance": ("none", "weights", "sampler"),
    "decision": ("argmax", "tuned"),
    "batching": ("bucket", "random"),
    "combine": (*COMBINERS, *(f"{c}+offsets" for c in COMBINERS)),
    "offsets_for": OFFSET_OBJECTIVES,
    "device": ("cpu", "cuda", "auto"),
    "image_encoder": IMAGE_ENCODER_NAMES,
}


#: fields that say where a run reads and writes, or how it shows and schedules its work: no result depends on them,
#: so no cache key holds them
RUN_FIELDS = ("data", "cache", "out_dir", "progress", "jobs")
FLOATS = ("dropout", "lr", "encoder_lr", "weight_decay", "warmup", "clip", "text_top_lr")
#: upper bounds: BERT-family encoders have 512 positions; seeds are 32-bit (NumPy)
AT_MOST = {"max_length": 512, "seed": 2**32 - 1, "fold_seed": 2**32 - 1}
#: the fields ``--head-params`` may set for one head of a model (its training recipe and its own layers)
HEAD_FIELDS = ("lr", "dropout", "hidden", "attention_hidden", "heads", "attention_pooled", "weight_decay", "warmup",
               "epochs", "batch_size")
#: fields added after results were cached, with the default every earlier result was made with: a cache key leaves a
#: field out at that default (:meth:`Config.result_fields`), so adding an option keeps every cached result
ADDED_DEFAULTS: dict[str, object] = {"head_params": "", "member_seeds": 1, "attention_pooled": False,
                                     "offsets_for": "macro_f1"}


def model_problem(model: str) -> str | None:
    """Why ``model`` (head names joined by ``+``) names no model: an unknown head, or one named twice; None when it is
    sound. The one home of this rule (:class:`Config` and :func:`lab5.models.member_names` ask it)."""
    names = model.split("+")
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or len(set(names)) != len(names):
        problem = f"unknown model {unknown[0]!r}" if unknown else f"model {model!r} names a head twice"
        return f"{problem}; choose one of {', '.join(MODEL_NAMES)}, or join several with + for an ensemble"
    return None


def parse_head_params(text: str) -> dict[str, dict[str, str]]:
    """``--head-params`` as {head: {field: value as written}}: ``"gated:dropout=0.5,epochs=6;late:epochs=6"`` ->
    ``{"gated": {"dropout": "0.5", "epochs": "6"}, "late": {"epochs": "6"}}``. Raises ConfigError on a malformed
    value (the heads, fields and values are checked by :class:`Config`)."""
    out: dict[str, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        head, colon, values = part.partition(":")
        pairs = [v.strip().partition("=") for v in values.split(",") if v.strip()]
        if not colon or not head.strip() or not pairs or any(not k.strip() or not eq or not v.strip() for k, eq, v in pairs):
            raise ConfigError(f"--head-params {text!r}: write head:field=value,field=value;head:... (at {part!r})")
        if head.strip() in out:
            raise ConfigError(f"--head-params {text!r} names head {head.strip()!r} twice")
        out[head.strip()] = {k.strip(): v.strip() for k, _, v in pairs}
    return out


def head_values(text: str) -> dict[str, dict[str, object]]:
    """``--head-params`` parsed (:func:`parse_head_params`), each value converted to its field's type; raises
    ConfigError on a field a head cannot set or a value of the wrong type."""
    types, out = field_types(), {}
    for head, values in parse_head_params(text).items():
        out[head] = {}
        for k, v in values.items():
            if k not in HEAD_FIELDS:
                raise ConfigError(f"--head-params: {head} cannot set {k!r}; a head sets {', '.join(HEAD_FIELDS)}")
            kind = types[k]
            try:
                out[head][k] = {"true": True, "false": False}[v.lower()] if kind is bool else kind(v)
            except (KeyError, ValueError):
                raise ConfigError(f"--head-params: {head}'s {k} must be {kind.__name__}, not {v!r}") from None
    return out


def format_head_params(values: dict[str, dict[str, object]]) -> str:
    """The ``--head-params`` text of {head: {field: value}}, the inverse of :func:`head_values`:
    ``{"gated": {"dropout": 0.5}, "late": {"epochs": 6}}`` -> ``"gated:dropout=0.5;late:epochs=6"``."""
    def text(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else repr(v)

    return ";".join(f"{head}:" + ",".join(f"{k}={text(v)}" for k, v in kv.items()) for head, kv in values.items() if kv)


def image_size_problem(image_encoder: str, image_size: int) -> str | None:
    """Why ``image_size`` does not suit ``image_encoder`` (the EfficientNet-Lite models pad statically and accept only
    their own size), or None; the one home of this rule (:class:`Config` and :mod:`lab5.encoders` ask it)."""
    native = NATIVE_IMAGE_SIZE.get(image_encoder)
    if image_encoder in FIXED_SIZE_ENCODERS and image_size > 0 and image_size != native:
        return f"{image_encoder} is built for {native}x{native} inputs (static padding); use --image-size {native} or 0"
    return None


def text_encoder_names(text_encoder: str) -> list[str]:
    """The text encoders a ``--text-encoder`` value names: one, or several joined with ``+`` (an ensemble whose
    heads are trained once on each encoder's features)."""
    return text_encoder.split("+")


def find_project(start: Path | None = None) -> Path | None:
    """The project folder holding the current directory: the nearest folder with ``notebooks/`` and
    ``pyproject.toml``, looking upwards from ``start`` (default: the current directory); None outside one."""
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
    image_encoder: str = field(default="efficientnet-lite0", metadata={"help": "efficientnet-lite0 | efficientnet-lite2 | resnet50 | resnet50-scratch"})
    model: str = field(default="cross_attention+gated+late", metadata={"help": "model name (see `lab5.heads.MODELS`); names joined by + make an ensemble"})
    text_features: str = field(default="tokens+lexicon", metadata={"help": "tokens: encoder states only (the pooled vector: the last layer's mean); tokens+lexicon: add VADER lexicon scores; tokens+lexicon+afinn: add the VADER and the AFINN-165 scores; layers+lexicon: the pooled vector is every layer's mean, concatenated, plus the VADER scores"})
    text_clean: str = field(default="none", metadata={"help": "none | tweet: links, handles, RT prefixes and hashtags normalised before encoding"})
    max_length: int = field(default=64, metadata={"help": "text tokens kept per tweet"})
    image_size: int = field(default=0, metadata={"help": "image side fed to the CNN (0: the encoder's own, 224 px; 260 for efficientnet-lite2)"})
    hidden: int = field(default=256, metadata={"help": "width of the fusion layers"})
    attention_hidden: int = field(default=128, metadata={"help": "width of the cross-attention layers (kept small: CPU time)"})
    heads: int = field(default=4, metadata={"help": "attention heads in cross-attention fusion"})
    attention_pooled: bool = field(default=False, metadata={"help": "cross-attention's classifier also reads the pooled text vector, with its lexicon scores (off: token and region states only)"})
    dropout: float = field(default=0.3, metadata={"help": "dropout in the heads"})
    epochs: int = field(default=3, metadata={"help": "epochs: exactly this many, or at most this many with --early-stopping (3: chosen by 5-fold CV, notebook 5)"})
    batch_size: int = field(default=64, metadata={"help": "batch size"})
    batching: str = field(default="bucket", metadata={"help": "bucket: heads that read token states train on batches of texts of similar length (less padding, about half the time); random: shuffled batches padded to their longest text"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate of the heads"})
    encoder_lr: float = field(default=2e-5, metadata={"help": "learning rate of encoder weights when fine-tuning"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (in the optimiser only)"})
    warmup: float = field(default=0.1, metadata={"help": "fraction of steps spent warming up"})
    early_stopping: bool = field(default=False, metadata={"help": "hold rows out and keep the epoch with the best macro-F1 on them (CV: a tenth of each training part; predict: the stored validation split); off (the default): train on every labelled row for exactly --epochs epochs"})
    train_rows: int = field(default=0, metadata={"help": "train on a seeded, stratified subset of this many of the training rows (0: all of them; in CV, of each training part; with --early-stopping a tenth of them is held out to stop on); for learning curves"})
    patience: int = field(default=5, metadata={"help": "epochs without a better validation macro-F1 before stopping"})
    balance: str = field(default="none", metadata={"help": "none | weights (class-weighted loss) | sampler (balanced sampling)"})
    decision: str = field(default="argmax", metadata={"help": "argmax | tuned: per-class logit offsets tuned on the validation rows (for --offsets-for)"})
    combine: str = field(default="mean+offsets", metadata={"help": "how members' probabilities become a label, fitted on the out-of-fold probabilities of this config's CV (see lab5.decisions): mean | temperature | stack, each optionally +offsets (per-class offsets on the log-probabilities tuned on all OOF rows for --offsets-for; chosen by notebook 5's CV). --finetune and --decision tuned decide without a CV: on the command line they imply mean unless --combine is given"})
    offsets_for: str = field(default="accuracy+macro_f1", metadata={"help": "what the offsets of --combine ...+offsets and --decision tuned maximise on the rows they are tuned on: accuracy+macro_f1 (the mean of the two; chosen by notebook 5's CV over three training seeds) or macro_f1"})
    clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping (0 turns it off)"})
    text_top: int = field(default=0, metadata={"help": "top text-encoder layers fine-tuned on cached states of the layer below (0: frozen features)"})
    text_top_lr: float = field(default=1e-4, metadata={"help": "learning rate of the fine-tuned top text layers"})
    finetune: bool = field(default=False, metadata={"help": "train end to end through the encoders instead of cached features"})
    finetune_layers: int = field(default=2, metadata={"help": "with --finetune: top text layers (and last CNN blocks) left trainable; 0 means all"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps (0: no limit); for smoke runs"})
    device: str = field(default="auto", metadata={"help": "cpu | cuda | auto"})
    head_params: str = field(default="", metadata={"help": "values for single heads of --model, head:field=value,...;head:... (e.g. gated:dropout=0.5,epochs=6): each named head trains with them, every other head with the options above"})
    member_seeds: int = field(default=1, metadata={"help": "train each member with this many training seeds (--seed, --seed + 1, ...) and average their probabilities (1: one seed)"})
    seed: int = field(default=0, metadata={"help": "seed of the training: initial weights, batch order, dropout (the data draws have --fold-seed)"})
    fold_seed: int = field(default=0, metadata={"help": "seed of the data draws: the CV folds, the early-stopping hold-out of each fold, --train-rows subsets (--seed seeds the training)"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads of feature extraction and end-to-end fine-tuning (fixed, so results repeat bit for bit); heads on cached features train on one thread each"})
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
        at_least = {"seed": 0, "fold_seed": 0, "max_length": 1, "image_size": 0, "hidden": 1, "attention_hidden": 1, "heads": 1, "epochs": 1,
                    "batch_size": 1, "patience": 1, "text_top": 0, "member_seeds": 1, "finetune_layers": 0, "max_steps": 0, "train_rows": 0, "threads": 1, "jobs": 1,
                    "folds": 2, "weight_decay": 0, "clip": 0}
        out += [f"--{_flag(k)} must be at least {lo}, not {getattr(self, k)}" for k, lo in at_least.items() if getattr(self, k) < lo]
        out += [f"--{_flag(k)} must be at most {hi}, not {getattr(self, k)}" for k, hi in AT_MOST.items() if getattr(self, k) > hi]
        out += [f"--{_flag(k)} must be above 0, not {getattr(self, k)}" for k in ("lr", "encoder_lr", "text_top_lr")
                if not getattr(self, k) > 0]
        out += [f"--{_flag(k)} must be in [0, 1), not {getattr(self, k)}" for k in ("dropout", "warmup")
                if not 0 <= getattr(self, k) < 1]
        out += [f"unknown --{_flag(k)} {getattr(self, k)!r}; use {', '.join(c)}" for k, c in CHOICES.items()
                if getattr(self, k) not in c]
        names = self.model.split("+")
        if problem := model_problem(self.model):
            out.append(problem)
        encoders = text_encoder_names(self.text_encoder)
        if not all(encoders) or len(set(encoders)) != len(encoders):
            out.append(f"--text-encoder {self.text_encoder!r} must name one encoder, or several different ones joined with +")
        elif len(encoders) > 1 and (self.finetune or self.text_top):
            out.append("--finetune and --text-top fine-tune one text encoder; name one in --text-encoder")
        if self.head_params:
            out += self.head_params_problems()
        if self.member_seeds > 1 and self.finetune:
            out.append("--member-seeds trains several members on cached features; drop --finetune")
        if self.heads >= 1 and self.attention_hidden % self.heads:
            out.append(f"--attention-hidden {self.attention_hidden} is not a multiple of --heads {self.heads}")
        if 0 < self.image_size < 32:
            out.append(f"--image-size must be 0 (the encoder's own) or at least 32, not {self.image_size}")
        if problem := image_size_problem(self.image_encoder, self.image_size):
            out.append(problem)
        if self.decision == "tuned" and not self.early_stopping:
            out.append("--decision tuned is tuned on the early-stopping rows; drop --no-early-stopping or use --decision argmax")
        if self.combine != "mean" and self.decision != "argmax":
            out.append(f"--combine {self.combine} and --decision {self.decision} are two decision rules; use one of them")
        if self.combine != "mean" and self.finetune:
            out.append("--combine is fitted on cross-validation, which runs on cached features; drop --finetune")
        if self.text_features.startswith("layers") and (self.finetune or self.text_top):
            out.append(f"--text-features {self.text_features} pools the cached states of every frozen layer; "
                       "drop --finetune and --text-top, or use tokens+lexicon")
        if self.text_features.endswith("+afinn") and self.finetune:
            out.append("--text-features tokens+lexicon+afinn appends the AFINN scores to cached features; fine-tuning end "
                       "to end reads none: drop --finetune, or use tokens+lexicon")
        if self.text_top and self.finetune:
            out.append("--text-top and --finetune both fine-tune the text encoder; use one of them")
        if self.finetune and len(names) > 1:
            out.append("ensembles train on cached features; drop --finetune or name one model")
        if self.device == "cuda" and not _cuda_available():
            out.append("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
        return out

    def head_params_problems(self) -> list[str]:
        """What is wrong with ``head_params``: its form, a head that is not in ``model``, a field a head cannot set,
        or a value its head's config refuses (checked as that head's own config, :meth:`head_config`)."""
        try:
            values = head_values(self.head_params)
        except ConfigError as e:
            return e.problems
        heads = self.model.split("+")
        out = [f"--head-params names {h!r}, which is not a head of --model {self.model}" for h in values if h not in heads]
        for h in (h for h in values if h in heads):
            try:
                self.head_config(h)
            except ConfigError as e:
                out += [f"--head-params {h}: {p}" for p in e.problems]
        return out

    def head_config(self, head: str) -> "Config":
        """The config head ``head`` of this model trains with: this one for that head alone, with its
        ``head_params`` values (the member seeds and decision are the model's, not a member's)."""
        own = head_values(self.head_params).get(head, {})
        return self.replace(model=head, head_params="", member_seeds=1, combine="mean", **own)

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (checked like any other config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-friendly dict (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "Config":
        """Inverse of :meth:`to_dict`, with the ``overrides`` that are not None applied; unknown keys are ignored,
        missing ones take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {**d, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**{k: v for k, v in given.items() if k in names and v is not None})

    def result_fields(self) -> dict:
        """The fields a result depends on, for the cache keys of trainings and CV runs (:func:`lab5.pipeline.train_key`,
        :func:`lab5.evaluation.cv_key`): all but :data:`RUN_FIELDS` and the fields of :data:`ADDED_DEFAULTS` at their
        default. ``fold_seed`` is left out where it equals ``seed``: results cached before the two were separated drew
        everything from ``seed``, and keep their keys."""
        return {k: v for k, v in self.to_dict().items()
                if k not in RUN_FIELDS and not (k == "fold_seed" and v == self.seed)
                and not (k in ADDED_DEFAULTS and v == ADDED_DEFAULTS[k])}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@functools.cache
def field_types() -> dict[str, type]:
    """Each Config field's type, evaluated (``int``, ``bool``, ``Path``, ``Path | None``, ...): what the checks and
    the command line's options are built from, rather than annotation strings."""
    return typing.get_type_hints(Config)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _cuda_available() -> bool:
    import torch  # only when CUDA is asked for

    return torch.cuda.is_available()
