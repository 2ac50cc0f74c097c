"""Per-class decision offsets, measured and not adopted (the nested CV of :mod:`lab5.experiments.nested` rejects
them): offsets on the log of the members' mean probabilities, tuned on out-of-fold (OOF) rows for the mean of
accuracy and macro-F1, and cross-fitted over the CV folds so that no label decides itself."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..decisions import mean_probabilities
from ..evaluation import folds
from ..metrics import metrics


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-8, 1.0))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def tune_offsets(z: torch.Tensor, labels: torch.Tensor, grid=None) -> torch.Tensor:
    """Offsets for the negative and neutral scores ``z`` (N, 3; positive fixed at 0) that maximise the mean of
    accuracy and macro-F1 on these rows; a grid search whose ties go to the smallest offsets (no gain: all zero)."""
    grid = torch.linspace(-1.0, 3.0, 17) if grid is None else grid
    order = sorted(((abs(a) + abs(b), float(a), float(b)) for a in grid.tolist() for b in grid.tolist()))
    biases = torch.tensor([[a, b, 0.0] for _, a, b in order])  # (K, 3)
    preds = (z.unsqueeze(0) + biases.unsqueeze(1)).argmax(-1)  # (K, N)
    score = (_macro_f1_many(preds, labels) + (preds == labels.unsqueeze(0)).float().mean(1)) / 2
    return biases[int(torch.argmax(score))]  # argmax takes the first maximum: the smallest


def _macro_f1_many(preds: torch.Tensor, y: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Macro-F1 of each row of ``preds`` (K, N) against ``y`` (N) at once (the search objective only)."""
    f1s = []
    for c in range(n):
        p, t = preds == c, (y == c).unsqueeze(0)
        tp = (p & t).sum(1).float()
        f1s.append(2 * tp / (p.sum(1) + t.sum(1)).float().clamp(min=1))
    return torch.stack(f1s).mean(0)


def fit_offsets(members: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Offsets tuned on the members' mean probabilities (a list of (N, 3) arrays) of labelled rows ``y``."""
    z = _log(mean_probabilities(members))
    return tune_offsets(torch.tensor(z, dtype=torch.float32), torch.tensor(y)).numpy().astype(float)


def with_offsets(members: list[np.ndarray], offsets: np.ndarray) -> np.ndarray:
    """The members' mean probabilities shifted by ``offsets`` on the log scale (unchanged when all are zero)."""
    p = mean_probabilities(members)
    return softmax(_log(p) + offsets) if np.any(offsets) else p


def cross_fit(members: list[np.ndarray], y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """OOF probabilities with offsets: the rows of each fold decided by offsets tuned on the other folds' rows."""
    out = np.zeros_like(members[0])
    for f in np.unique(fold_of):
        test = fold_of == f
        out[test] = with_offsets([m[test] for m in members], fit_offsets([m[~test] for m in members], y[~test]))
    return out


def offsets_folds(ds, c, run) -> pd.DataFrame:
    """Per-fold metrics of ``run`` (the CV of ``c`` on ``ds``) decided by offsets cross-fitted over its own folds
    from its members' OOF probabilities: what ``--combine mean+offsets`` scored before it left the core."""
    y = ds.train.label.to_numpy()
    split = folds(y, c.folds, c.fold_seed)
    fold_of = np.zeros(len(y), dtype=int)
    for f, (_, te) in enumerate(split):
        fold_of[te] = f
    probs = cross_fit(list(run.member_probs.values()), y, fold_of)
    return pd.DataFrame([{"fold": f, **metrics(y[te], probs[te].argmax(1))} for f, (_, te) in enumerate(split)])
