"""One training loop for every model, the batches it feeds on, and checkpoints.

AdamW (weight decay in the optimiser only, none on biases and norms), linear warm-up then cosine decay,
early stopping on validation macro-F1, class-weighted loss or balanced sampling, gradient clipping,
mixed precision on CUDA, deterministic given a seed.
"""
from __future__ import annotations

import copy
import io
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
import torch.nn.functional as F

from .config import Config, ConfigError


# --------------------------------------------------------------------------- determinism and devices
def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch; deterministic algorithms; a fixed CPU thread count."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


# --------------------------------------------------------------------------- batches
class Batches(Protocol):
    labels: torch.Tensor

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> dict: ...


class FeatureData:
    """Rows of cached features for ``guids``; ``batch(idx)`` gathers a feature dict (padding trimmed)."""

    def __init__(self, features, guids, labels=None, sequences: bool = True):
        self.guids = list(guids)
        t, i = features.text, features.image
        tr, ir = t.rows(self.guids), i.rows(self.guids)
        self.tensors = {"text_pooled": t.pooled[tr], "text_mask": t.mask[tr], "image_pooled": i.pooled[ir], "image_mask": i.mask[ir]}
        if sequences:  # heads that read only pooled vectors skip gathering the (large) sequences
            self.tensors.update(text_seq=t.seq[tr], image_seq=i.seq[ir])
        self.extra = {k: v[tr] for k, v in getattr(features, "extra", {}).items()}
        self.labels = torch.tensor(np.array(labels if labels is not None else [-1] * len(self.guids)), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.guids)

    def batch(self, idx: torch.Tensor) -> dict:
        b = {k: v[idx] for k, v in self.tensors.items()}
        n = max(1, int(b["text_mask"].sum(1).max()))  # right-padded: keep only the longest text's tokens
        b["text_mask"] = b["text_mask"][:, :n]
        if "text_seq" in b:
            b["text_seq"] = b["text_seq"][:, :n]
        b.update({k: v[idx] for k, v in self.extra.items()})
        b["label"] = self.labels[idx]
        return b


class RawData:
    """Raw pairs for end-to-end fine-tuning: tokenised text and transformed images, made per batch."""

    def __init__(self, ds, guids, labels, text_encoder, image_encoder, cfg: Config, train: bool):
        self.ds, self.guids, self.cfg = ds, list(guids), cfg
        self.tokens = None
        if text_encoder is not None:
            from .data import encoder_texts

            texts = encoder_texts(ds.all.set_index("guid").loc[self.guids, "text"], cfg.text_clean)
            self.tokens = text_encoder.tokenize(texts, cfg.max_length)
        self.transform = image_encoder.spec.transform(train=train) if image_encoder is not None else None
        self.min_side = image_encoder.spec.resize if image_encoder is not None else None
        self.labels = torch.tensor(np.array(labels if labels is not None else [-1] * len(self.guids)), dtype=torch.long)

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


def _to(b: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in b.items()}


def class_weights(labels: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Inverse-frequency ("balanced") class weights, as scikit-learn computes them."""
    counts = torch.bincount(labels, minlength=n).float().clamp(min=1)
    return len(labels) / (n * counts)


def _batches(data: Batches, cfg: Config, gen: torch.Generator, shuffle: bool):
    n = len(data)
    if shuffle and cfg.balance == "sampler":
        w = class_weights(data.labels)[data.labels]
        order = torch.multinomial(w, n, replacement=True, generator=gen)
    elif shuffle:
        order = torch.randperm(n, generator=gen)
    else:
        order = torch.arange(n)
    for s in range(0, n, cfg.batch_size):
        yield order[s:s + cfg.batch_size]


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_macro_f1: float


def _optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.encoder_lr if name.startswith(("text_encoder.", "image_encoder.")) else \
            cfg.text_top_lr if name.startswith("text_top.") else cfg.lr
        decay = p.ndim > 1 and "norm" not in name.lower() and "bn" not in name.lower()
        groups.setdefault((lr, decay), []).append(p)
    return torch.optim.AdamW(foreach=True, params=
        [{"params": ps, "lr": lr, "weight_decay": cfg.weight_decay if dec else 0.0} for (lr, dec), ps in groups.items()])


def _schedule(opt: torch.optim.Optimizer, cfg: Config, total: int):
    warm = max(1, int(cfg.warmup * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def fit(model: nn.Module, train: Batches, val: Batches | None, cfg: Config) -> TrainResult:
    """Train ``model`` on ``train``, early-stopping on the macro-F1 of ``val``; returns the best weights' model.

    An ensemble's members are fitted one after another, each with its own early stopping; the history then
    has a ``member`` column and the decision rule (``cfg.decision``) is tuned on the averaged output.
    """
    from sklearn.metrics import f1_score
    from tqdm.auto import tqdm

    from .models import Ensemble

    if cfg.decision not in ("argmax", "tuned"):
        raise ConfigError(f"unknown --decision {cfg.decision!r}; use argmax or tuned")
    if cfg.balance not in ("none", "weights", "sampler"):
        raise ConfigError(f"unknown --balance {cfg.balance!r}; use none, weights or sampler")
    if isinstance(model, Ensemble):
        return _fit_ensemble(model, train, val, cfg)
    seed_everything(cfg.seed, cfg.threads)
    device = resolve_device(cfg.device)
    model.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    weight = class_weights(train.labels).to(device) if cfg.balance == "weights" else None
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if not cfg.max_steps else min(cfg.max_steps, steps_per_epoch * cfg.epochs)
    opt = _optimizer(model, cfg)
    sched = _schedule(opt, cfg, total)
    amp = device.type == "cuda"
    rows, best, best_state, best_epoch, bad, step = [], -1.0, None, 0, 0, 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {type(getattr(model, 'head', model)).__name__}", disable=not cfg.progress)
    for epoch in bar:
        _train_mode(model)
        losses = []
        for idx in _batches(train, cfg, gen, shuffle=True):
            b = _to(train.batch(idx), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(b)
            loss = F.cross_entropy(logits.float(), b["label"], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if cfg.max_steps and step >= cfg.max_steps:
                break
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0]}
        if val is not None and len(val):
            logits = predict_logits(model, val, cfg)
            pred = logits.argmax(1).numpy()
            y = val.labels.numpy()
            row.update(val_loss=float(F.cross_entropy(logits, val.labels, weight=None if weight is None else weight.cpu())),
                       val_accuracy=float((pred == y).mean()), val_macro_f1=float(f1_score(y, pred, average="macro")))
            if row["val_macro_f1"] > best:
                best, best_epoch, bad = row["val_macro_f1"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            bar.set_postfix(f1=f"{row['val_macro_f1']:.3f}")
        rows.append(row)
        if (val is not None and bad >= cfg.patience) or (cfg.max_steps and step >= cfg.max_steps):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = rows[-1]["epoch"]
    model.eval()
    if cfg.decision == "tuned" and val is not None and len(val):
        model.logit_bias.copy_(tune_logit_bias(predict_logits(model, val, cfg) - model.logit_bias.cpu(), val.labels))
    return TrainResult(model, pd.DataFrame(rows), best_epoch, best)


def _fit_ensemble(model: nn.Module, train: Batches, val: Batches | None, cfg: Config) -> TrainResult:
    from sklearn.metrics import f1_score

    histories, best = [], float("nan")
    model.to(resolve_device(cfg.device))
    for name, member in model.members.items():
        res = fit(member, train, val, cfg.replace(model=name, decision="argmax"))
        histories.append(res.history.assign(member=name, best=res.history.epoch == res.best_epoch))
    model.eval()
    if val is not None and len(val):
        logits = predict_logits(model, val, cfg)
        best = float(f1_score(val.labels.numpy(), logits.argmax(1).numpy(), average="macro"))
        if cfg.decision == "tuned":
            model.logit_bias.copy_(tune_logit_bias(logits - model.logit_bias.cpu(), val.labels))
    return TrainResult(model, pd.concat(histories, ignore_index=True), 0, best)


def tune_logit_bias(logits: torch.Tensor, labels: torch.Tensor, grid=None) -> torch.Tensor:
    """Offsets for the negative and neutral logits (positive fixed at 0) that maximise macro-F1 on these rows.

    A grid search; ties go to the smallest offsets, so with no gain the rule stays argmax.
    """
    grid = torch.linspace(-1.0, 3.0, 17) if grid is None else grid
    order = sorted(((abs(a) + abs(b), float(a), float(b)) for a in grid.tolist() for b in grid.tolist()))
    biases = torch.tensor([[a, b, 0.0] for _, a, b in order])  # (K, 3)
    preds = (logits.unsqueeze(0) + biases.unsqueeze(1)).argmax(-1)  # (K, N)
    f1 = _macro_f1_many(preds, labels)
    return biases[int(torch.argmax(f1))]  # argmax takes the first maximum: the smallest offsets


def _macro_f1_many(preds: torch.Tensor, y: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Macro-F1 of each row of ``preds`` (K, N) against ``y`` (N) at once (the search objective only;
    reported metrics come from scikit-learn)."""
    f1s = []
    for c in range(n):
        p, t = preds == c, (y == c).unsqueeze(0)
        tp = (p & t).sum(1).float()
        f1s.append(2 * tp / (p.sum(1) + t.sum(1)).float().clamp(min=1))
    return torch.stack(f1s).mean(0)


def _train_mode(model: nn.Module) -> None:
    """Train mode, except normalisation layers whose weights are frozen: their running statistics stay put."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, data: Batches, cfg: Config) -> torch.Tensor:
    """Logits (N, 3) on the CPU, in the data's order."""
    device = resolve_device(cfg.device)
    model.eval()
    out = []
    for idx in _batches(data, cfg.replace(batch_size=max(cfg.batch_size, 256)), None, shuffle=False):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(_to(data.batch(idx), device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 3)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: nn.Module, cfg: Config, meta: dict) -> None:
    """Write ``path/model.pt`` (state dict) and ``path/config.json`` (config + dims), each atomically."""
    from .io import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(path / "model.pt", buf.getvalue())
    atomic_write_bytes(path / "config.json", json.dumps({"config": cfg.to_dict(), **meta}, indent=2, sort_keys=True).encode())


def read_checkpoint(path: Path) -> tuple[Config, dict, dict]:
    """Config, meta and state dict of a checkpoint; a missing or damaged one raises ValueError naming it."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable JSON, foreign bytes, a truncated zip: all mean "damaged"
        raise ConfigError(f"checkpoint {path} is missing or damaged ({e})") from None
    return Config.from_dict(meta.pop("config")), meta, state


# --------------------------------------------------------------------------- stages
def new_classifier(cfg: Config, text_dim: int, image_dim: int, encoders: tuple | None = None,
                   seq_dims: tuple[int, int] | None = None) -> nn.Module:
    """A freshly initialised (seeded) classifier of ``cfg.model``, with encoders attached when given;
    an :class:`~lab5.models.Ensemble` of such classifiers when ``cfg.model`` joins several names with ``+``."""
    from .models import Classifier, Ensemble, build_head, member_names

    names = member_names(cfg.model)
    if len(names) > 1:
        if cfg.finetune:
            raise ConfigError("ensembles train on cached features; drop --finetune or name one model")
        return Ensemble({n: new_classifier(cfg.replace(model=n), text_dim, image_dim, None, seq_dims) for n in names})
    seed_everything(cfg.seed, cfg.threads)
    head = build_head(cfg.model, text_dim, image_dim, cfg, seq_dims)
    if cfg.text_top and cfg.finetune:
        raise ConfigError("--text-top and --finetune both fine-tune the text encoder; use one of them")
    if encoders is None:
        return Classifier(head, text_top=_text_top(cfg) if cfg.text_top and head.uses_text else None)
    t, i = encoders
    return Classifier(head, t if head.uses_text else None, i if head.uses_image else None)


def _text_top(cfg: Config) -> nn.Module:
    """A trainable copy of the text encoder's top ``cfg.text_top`` layers."""
    from .encoders import text_encoder
    from .models import TextTop

    return TextTop(text_encoder(cfg.text_encoder).model.encoder.layer[-cfg.text_top:])


def load_encoders(cfg: Config) -> tuple:
    """Text and image encoders for fine-tuning, frozen but for their top ``cfg.finetune_layers`` layers/blocks."""
    from .encoders import image_encoder, text_encoder

    t, i = text_encoder(cfg.text_encoder), image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    t.trainable_top(cfg.finetune_layers)
    i.trainable_top(cfg.finetune_layers)
    return t, i


def make_data(cfg: Config, ds, guids, labels, features=None, encoders=None, train: bool = False) -> Batches:
    """Batches of cached features, or of raw pairs when fine-tuning."""
    if cfg.finetune:
        return RawData(ds, guids, labels, encoders[0], encoders[1], cfg, train)
    from .models import uses_sequences

    return FeatureData(features, guids, labels, sequences=uses_sequences(cfg.model) or cfg.text_top > 0)


def train_model(cfg: Config, ds, features=None, train_guids=None, val_guids=None) -> TrainResult:
    """Train ``cfg.model`` on the committed split (or the given guids); fine-tunes end to end with ``cfg.finetune``."""
    from .data import get_split

    if train_guids is None:
        split = get_split(ds)
        train_guids, val_guids = split.train, split.val
    labels = ds.train.set_index("guid")["label"]
    encoders = load_encoders(cfg) if cfg.finetune else None
    if encoders:
        model = new_classifier(cfg, encoders[0].dim, encoders[1].dim, encoders)
    else:
        model = new_classifier(cfg, *features.dims(), seq_dims=features.seq_dims())
    used = (model.text_encoder, model.image_encoder) if encoders else None  # only the encoders the head reads
    tr = make_data(cfg, ds, train_guids, labels.loc[list(train_guids)].to_numpy(), features, used, train=True)
    va = make_data(cfg, ds, val_guids, labels.loc[list(val_guids)].to_numpy(), features, used) if val_guids else None
    return fit(model, tr, va, cfg)


def model_meta(model: nn.Module, result: TrainResult | None = None) -> dict:
    """What a checkpoint needs besides the config to rebuild the model."""
    from .models import Classifier, Ensemble

    if isinstance(model, Ensemble):
        model = next(iter(model.members.values()))
    assert isinstance(model, Classifier)
    head = model.head
    dims = {f"{k}_dim": _in_dim(head, k) for k in ("text", "image", "text_seq", "image_seq")}
    return {**dims, **({"best_epoch": result.best_epoch, "best_val_macro_f1": result.best_val_macro_f1} if result else {})}


def _in_dim(head: nn.Module, which: str) -> int:
    return getattr(head, "dims", {}).get(which, 0)


def load_model(path: Path) -> tuple[nn.Module, Config]:
    """Rebuild a saved classifier; its predictions are identical to the saved model's."""
    cfg, meta, state = read_checkpoint(path)
    encoders = load_encoders(cfg) if cfg.finetune else None
    seq = (meta["text_seq_dim"], meta["image_seq_dim"]) if "text_seq_dim" in meta else None
    model = new_classifier(cfg, meta["text_dim"], meta["image_dim"], encoders, seq)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"checkpoint {path} does not fit model {cfg.model!r} ({str(e).splitlines()[0]})") from None
    return model.eval(), cfg


def predict_test(cfg: Config, ds, model: nn.Module | None = None, out: Path | None = None) -> dict[str, str]:
    """Predicted tag of every test guid; trains ``cfg.model`` on the committed split when no model is given.

    With ``out``, the ``guid,tag`` file is written (checked, atomically) in the test file's order.
    """
    from .data import LABELS, write_predictions
    from .features import load_features

    feats = None if cfg.finetune else load_features(ds, cfg)
    if model is None:
        model = train_model(cfg, ds, feats).model
    enc = (model.text_encoder, model.image_encoder) if cfg.finetune else None
    guids = list(ds.test.guid)
    pred = predict_logits(model, make_data(cfg, ds, guids, None, feats, enc), cfg).argmax(1).tolist()
    tags = {g: LABELS[p] for g, p in zip(guids, pred)}
    if out is not None:
        write_predictions(ds.test, tags, out)
    return tags
