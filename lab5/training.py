"""The training loop: AdamW, linear warm-up then cosine decay, fixed epochs (last weights kept), clipping at
norm 1, bf16 autocast on CUDA; deterministic given the seed (:func:`lab5.runtime.reproducible`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from .batches import Batches, EnsembleData, batch_order
from .config import Config, TrainingGroup
from .models import Ensemble, member_configs, members_of
from .parallel import run_all
from .runtime import reproducible, resolve_device


#: torch threads of end-to-end fine-tuning (fixed, so that its results repeat bit for bit on any machine)
FINETUNE_THREADS = 2
#: gradient-norm clipping
CLIP = 1.0
#: the share of the steps spent warming the learning rate up
WARMUP = 0.1


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch (an ensemble: per member and epoch, with ``member``)
    val_macro_f1: float  # on the validation rows after the last epoch (NaN without any)


def training_threads(cfg: Config) -> int:
    """Torch threads of a training: :data:`FINETUNE_THREADS` when fine-tuning, else one.

    Heads are too small for a second thread; one keeps results independent of the core count.
    """
    return FINETUNE_THREADS if cfg.finetune else 1


def make_optimizer(model: nn.Module, training: TrainingGroup) -> torch.optim.Optimizer:
    """AdamW with a learning rate per part (head, fine-tuned encoders) and weight decay on weight matrices only."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = training.encoder_lr if name.startswith(("text_encoder.", "image_encoder.")) else training.lr
        decay = p.ndim > 1 and "norm" not in name.lower() and "bn" not in name.lower()
        groups.setdefault((lr, decay), []).append(p)
    return torch.optim.AdamW(foreach=True, params=
        [{"params": ps, "lr": lr, "weight_decay": training.weight_decay if dec else 0.0} for (lr, dec), ps in groups.items()])


def make_schedule(opt: torch.optim.Optimizer, warmup: float, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over a ``warmup`` fraction of ``total`` steps, then cosine decay to zero."""
    warm = max(1, int(warmup * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def train_mode(model: nn.Module) -> None:
    """Train mode, except normalisation layers whose weights are frozen: their running statistics stay put."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def _to(b: dict, device: torch.device) -> dict:
    """A batch on ``device``; an ensemble's batch holds one feature dict per text encoder."""
    return {k: _to(v, device) if isinstance(v, dict) else v.to(device, non_blocking=True) for k, v in b.items()}


def train_epoch(model: nn.Module, data: Batches, opt, sched, batch_size: int, gen: torch.Generator,
                device: torch.device) -> list[float]:
    """One pass over ``data`` on ``device``; returns the batch losses."""
    train_mode(model)
    losses = []
    for idx in batch_order(data, batch_size, gen, shuffle=True, lengths=data.lengths):
        b = _to(data.batch(idx), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(b)
        loss = F.cross_entropy(logits.float(), b["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def evaluate(model: nn.Module, data: Batches, training: TrainingGroup, threads: int = 1) -> dict[str, float]:
    """Validation loss, accuracy and macro-F1 of ``model`` on ``data``."""
    logits = predict_logits(model, data, training, threads)
    pred, y = logits.argmax(1).numpy(), data.labels.numpy()
    return {"val_loss": float(F.cross_entropy(logits, data.labels)),
            "val_accuracy": float((pred == y).mean()), "val_macro_f1": float(f1_score(y, pred, average="macro"))}


def train_classifier(model: nn.Module, train: Batches, val: Batches | None, training: TrainingGroup, *,
                     device: torch.device, threads: int = 1, progress: bool = False) -> TrainResult:
    """Train one classifier for ``training.epochs`` epochs, scoring ``val`` after each; the last weights are kept."""
    has_val = val is not None and len(val) > 0
    with reproducible(training.seed, threads):
        model.to(device)
        gen = torch.Generator().manual_seed(training.seed)
        total = math.ceil(len(train) / training.batch_size) * training.epochs
        opt = make_optimizer(model, training)
        sched = make_schedule(opt, WARMUP, total)
        rows = []
        name = type(getattr(model, "head", model)).__name__
        for epoch in tqdm(range(1, training.epochs + 1), desc=f"train {name}", disable=not progress):
            losses = train_epoch(model, train, opt, sched, training.batch_size, gen, device)
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0]}
            if has_val:
                row.update(evaluate(model, val, training, threads))
            rows.append(row)
    return TrainResult(model.eval(), pd.DataFrame(rows), rows[-1].get("val_macro_f1", float("nan")))


def fit(model: nn.Module, train: Batches, val: Batches | None, cfg: Config) -> TrainResult:
    """Train a classifier, or each member of an ensemble on its own features."""
    device = resolve_device(cfg.device)
    model.to(device)
    if not members_of(model):
        return train_classifier(model, train, val, cfg.training_group, device=device, threads=training_threads(cfg),
                                progress=cfg.progress)
    has_val = val is not None and len(val) > 0
    runs = _fit_members(model, train, val if has_val else None, cfg, device)
    model.eval()
    history = pd.concat([r.history.assign(member=n) for n, r in runs.items()], ignore_index=True)
    f1 = float(f1_score(val.labels.numpy(), predict_labels(model, val, cfg), average="macro")) if has_val else float("nan")
    return TrainResult(model, history, f1)


def _fit_members(model: Ensemble, train: EnsembleData, val: EnsembleData | None, cfg: Config,
                 device: torch.device) -> dict[str, TrainResult]:
    """Train every member of ``model`` on its own view and config, ``cfg.jobs`` at once; load the weights."""
    members, configs = list(members_of(model).items()), member_configs(cfg)

    def train_one(k: int):
        name, (m, encoder) = members[k]
        c = configs[name]
        r = train_classifier(m, train.views[encoder], val.views[encoder] if val is not None else None, c.training_group,
                             device=device, threads=training_threads(c), progress=c.progress)
        return m.state_dict(), r.history, r.val_macro_f1

    runs = {}
    for (name, (m, _)), (state, history, f1) in zip(members, run_all(train_one, range(len(members)), cfg.jobs)):
        m.load_state_dict(state)
        runs[name] = TrainResult(m.eval(), history, f1)
    return runs


@torch.no_grad()
def predict_logits(model: nn.Module, data: Batches, training: TrainingGroup, threads: int = 1) -> torch.Tensor:
    """Logits (N, 3) on the CPU, in the data's order, computed on the device the model is on."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    with reproducible(training.seed, threads):  # the thread count, like the seed, decides float rounding
        for idx in batch_order(data, max(training.batch_size, 256)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out.append(model(_to(data.batch(idx), device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 3)


def member_probabilities(model: nn.Module, data: Batches, cfg: Config) -> list[np.ndarray]:
    """Class probabilities (N, 3) of each member of an ensemble; of the model alone for a classifier."""
    configs = member_configs(cfg)
    members = [(m, data.views[encoder], configs[n]) for n, (m, encoder) in members_of(model).items()] or [(model, data, cfg)]
    return [predict_logits(m, view, c.training_group, training_threads(c)).softmax(1).numpy() for m, view, c in members]


def predict_labels(model: nn.Module, data: Batches, cfg: Config) -> np.ndarray:
    """Predicted class of every row of ``data``: the argmax of the model's logits."""
    return predict_logits(model, data, cfg.training_group, training_threads(cfg)).argmax(1).numpy()
