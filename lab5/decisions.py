"""Decisions from out-of-fold (OOF) probabilities: how the probabilities of several models become one label.

Every combiner is fitted on OOF rows only and, to be scored, cross-fitted over the CV folds (:func:`cross_fit`):
the rows of fold k are decided by a combiner fitted on the other folds' rows, so no label is used to decide itself.

* ``mean``: the plain average of the members' probabilities;
* ``temperature``: each member's probabilities sharpened or softened by one temperature (fitted by log-loss on OOF
  rows) before averaging, so an over-confident member does not outvote the others;
* ``stack``: a multinomial logistic regression on the members' log-probabilities;
* any of them ``+offsets``: per-class offsets on the combined log-probabilities (the neutral rule) tuned for
  macro-F1 on all OOF rows, instead of on a few hundred early-stopping rows.

The same object is every decision rule of the project: ``--combine`` is one fitted on the OOF rows of the config's CV
(:func:`lab5.pipeline.bagged_decision`), the plain argmax is ``mean``. A checkpoint stores the fitted rule
(:meth:`Decision.to_dict`), so predicting from it needs no CV.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .config import CHOICES, COMBINERS, OFFSET_OBJECTIVES
from .errors import ConfigError

#: temperatures searched (log-spaced, 0.25 ... 4); a grid keeps the fit exact and deterministic
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-8, 1.0))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-_log(p[np.arange(len(y)), y]).mean())


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log-loss of ``softmax(log p / T)`` on these rows."""
    losses = [log_loss(softmax(_log(p) / t), y) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


@dataclass
class Decision:
    """A fitted way to turn members' probabilities (a list of (N, 3) arrays, always in the same order) into
    probabilities and labels. ``kind`` is one of :data:`lab5.config.COMBINERS`, optionally with ``+offsets``."""

    kind: str = "mean"
    temperatures: list[float] = field(default_factory=list)
    stacker: object = None
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(3))
    #: what the offsets maximise when fitted (:data:`lab5.config.OFFSET_OBJECTIVES`)
    objective: str = "macro_f1"

    def __post_init__(self) -> None:
        if self.kind not in CHOICES["combine"]:  # the same list --combine is checked against
            raise ConfigError(f"unknown decision {self.kind!r}; use one of {', '.join(COMBINERS)}, optionally with +offsets")
        if self.objective not in OFFSET_OBJECTIVES:
            raise ConfigError(f"unknown offsets objective {self.objective!r}; use one of {', '.join(OFFSET_OBJECTIVES)}")

    def fit(self, members: list[np.ndarray], y: np.ndarray) -> "Decision":
        base = self.kind.partition("+")[0]
        if base == "temperature":
            self.temperatures = [fit_temperature(p, y) for p in members]
        elif base == "stack":
            from sklearn.linear_model import LogisticRegression

            self.stacker = LogisticRegression(C=1.0, max_iter=1000).fit(np.hstack([_log(p) for p in members]), y)
        if self.kind.endswith("+offsets"):
            self.offsets = np.zeros(3)
            z = _log(self.probabilities(members))
            self.offsets = tune_offsets(torch.tensor(z, dtype=torch.float32), torch.tensor(y),
                                        objective=self.objective).numpy().astype(float)
        return self

    def probabilities(self, members: list[np.ndarray]) -> np.ndarray:
        """Combined probabilities (offsets included)."""
        base = self.kind.partition("+")[0]
        if base == "stack":
            p = self.stacker.predict_proba(np.hstack([_log(m) for m in members]))
        elif base == "temperature":
            p = np.mean([softmax(_log(m) / t) for m, t in zip(members, self.temperatures)], axis=0)
        else:
            p = np.mean(members, axis=0)
        return softmax(_log(p) + self.offsets) if np.any(self.offsets) else p

    def predict(self, members: list[np.ndarray]) -> np.ndarray:
        return self.probabilities(members).argmax(1)

    @property
    def is_argmax(self) -> bool:
        """Whether this rule is the plain argmax of the members' mean (nothing fitted, no offsets)."""
        return self.kind == "mean" and not np.any(self.offsets)

    def to_dict(self) -> dict:
        """JSON-friendly form of the fitted rule (what a checkpoint stores); :meth:`from_dict` inverts it exactly."""
        d = {"kind": self.kind, "temperatures": [float(t) for t in self.temperatures],
             "offsets": [float(o) for o in self.offsets], "objective": self.objective}
        if self.stacker is not None:
            d["stacker"] = {"coef": self.stacker.coef_.tolist(), "intercept": self.stacker.intercept_.tolist(),
                            "classes": self.stacker.classes_.tolist()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        """The rule :meth:`to_dict` wrote; its probabilities are the fitted rule's, bit for bit."""
        out = cls(d["kind"], [float(t) for t in d.get("temperatures", [])], None,
                  np.asarray(d.get("offsets", [0.0, 0.0, 0.0]), dtype=float), d.get("objective", "macro_f1"))
        if d.get("stacker"):
            from sklearn.linear_model import LogisticRegression

            st, lr = d["stacker"], LogisticRegression(C=1.0, max_iter=1000)
            lr.coef_, lr.intercept_ = np.asarray(st["coef"], dtype=float), np.asarray(st["intercept"], dtype=float)
            lr.classes_ = np.asarray(st["classes"])
            lr.n_features_in_ = lr.coef_.shape[1]
            out.stacker = lr
        return out


def tune_offsets(z: torch.Tensor, labels: torch.Tensor, grid=None, objective: str = "macro_f1") -> torch.Tensor:
    """Offsets for the negative and neutral scores ``z`` (N, 3; logits or log-probabilities, positive fixed at 0)
    that maximise ``objective`` on these rows: macro-F1, or ``accuracy+macro_f1``, the mean of accuracy and macro-F1
    (macro-F1 alone is flat near its top, so it buys its last hundredths with whole points of accuracy).

    A grid search; ties go to the smallest offsets, so with no gain the rule stays argmax.
    """
    grid = torch.linspace(-1.0, 3.0, 17) if grid is None else grid
    order = sorted(((abs(a) + abs(b), float(a), float(b)) for a in grid.tolist() for b in grid.tolist()))
    biases = torch.tensor([[a, b, 0.0] for _, a, b in order])  # (K, 3)
    preds = (z.unsqueeze(0) + biases.unsqueeze(1)).argmax(-1)  # (K, N)
    score = _macro_f1_many(preds, labels)
    if objective == "accuracy+macro_f1":
        score = (score + (preds == labels.unsqueeze(0)).float().mean(1)) / 2
    return biases[int(torch.argmax(score))]  # argmax takes the first maximum: the smallest


def _macro_f1_many(preds: torch.Tensor, y: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Macro-F1 of each row of ``preds`` (K, N) against ``y`` (N) at once (the search objective only;
    reported metrics come from scikit-learn)."""
    f1s = []
    for c in range(n):
        p, t = preds == c, (y == c).unsqueeze(0)
        tp = (p & t).sum(1).float()
        f1s.append(2 * tp / (p.sum(1) + t.sum(1)).float().clamp(min=1))
    return torch.stack(f1s).mean(0)


def cross_fit(kind: str, members: list[np.ndarray], y: np.ndarray, fold_of: np.ndarray,
              objective: str = "macro_f1") -> np.ndarray:
    """OOF probabilities of the ``kind`` decision (its offsets tuned for ``objective``): the rows of each fold combined
    by a decision fitted on the rows of the other folds."""
    out = np.zeros_like(members[0])
    for f in np.unique(fold_of):
        test = fold_of == f
        d = Decision(kind, objective=objective).fit([m[~test] for m in members], y[~test])
        out[test] = d.probabilities([m[test] for m in members])
    return out


def calibration_bins(p: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Rows grouped by the confidence of their predicted class into ``bins`` equal-width bins: per non-empty bin its
    lower edge, row count, mean confidence and accuracy (what a reliability diagram draws)."""
    conf, right = p.max(1), p.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows = [{"lower": edges[b], "rows": int((which == b).sum()), "confidence": conf[which == b].mean(),
             "accuracy": right[which == b].mean()} for b in range(bins) if (which == b).any()]
    return pd.DataFrame(rows, columns=["lower", "rows", "confidence", "accuracy"])


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean gap between confidence and accuracy over equal-width confidence bins, weighted by bin size."""
    t = calibration_bins(p, y, bins)
    return float((abs(t.accuracy - t.confidence) * t.rows).sum() / len(y))
