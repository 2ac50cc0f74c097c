"""How the probabilities of an ensemble's members become one label, fitted on out-of-fold (OOF) rows only.

* ``mean``: the plain average of the members' probabilities (the final model's rule);
* ``mean+offsets``: per-class offsets on the log of that mean, tuned on OOF rows for the mean of accuracy and
  macro-F1; to be scored it is cross-fitted over the CV folds (:func:`cross_fit`): the rows of fold k are decided by
  offsets tuned on the other folds' rows, so no label is used to decide itself.

A checkpoint stores the fitted rule (:meth:`Decision.to_dict`), so predicting from it needs no CV.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .config import CHOICES
from .errors import ConfigError


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-8, 1.0))


def mean_probabilities(members: list):
    """How an ensemble's members are combined, everywhere (:class:`lab5.models.Ensemble`, :class:`Decision`, the CV of
    an ensemble): the mean of their class probabilities, (N, 3) tensors or arrays."""
    return torch.stack(members).mean(0) if isinstance(members[0], torch.Tensor) else np.mean(members, axis=0)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@dataclass
class Decision:
    """A fitted way to turn members' probabilities (a list of (N, 3) arrays, always in the same order) into
    probabilities and labels: ``mean`` or ``mean+offsets`` (``Config.combine``)."""

    kind: str = "mean"
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        if self.kind not in CHOICES["combine"]:  # the same list --combine is checked against
            raise ConfigError(f"unknown decision {self.kind!r}; use one of {', '.join(CHOICES['combine'])}")

    def fit(self, members: list[np.ndarray], y: np.ndarray) -> "Decision":
        self.offsets = np.zeros(3)
        if self.kind == "mean+offsets":
            z = _log(mean_probabilities(members))
            self.offsets = tune_offsets(torch.tensor(z, dtype=torch.float32), torch.tensor(y)).numpy().astype(float)
        return self

    def probabilities(self, members: list[np.ndarray]) -> np.ndarray:
        """Combined probabilities (offsets included)."""
        p = mean_probabilities(members)
        return softmax(_log(p) + self.offsets) if np.any(self.offsets) else p

    def predict(self, members: list[np.ndarray]) -> np.ndarray:
        return self.probabilities(members).argmax(1)

    @property
    def is_argmax(self) -> bool:
        """Whether this rule is the plain argmax of the members' mean (no offsets)."""
        return not np.any(self.offsets)

    def to_dict(self) -> dict:
        """JSON-friendly form of the fitted rule (what a checkpoint stores); :meth:`from_dict` inverts it exactly."""
        return {"kind": self.kind, "offsets": [float(o) for o in self.offsets]}

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        """The rule :meth:`to_dict` wrote; its probabilities are the fitted rule's, bit for bit."""
        return cls(d["kind"], np.asarray(d.get("offsets", [0.0, 0.0, 0.0]), dtype=float))


def tune_offsets(z: torch.Tensor, labels: torch.Tensor, grid=None) -> torch.Tensor:
    """Offsets for the negative and neutral scores ``z`` (N, 3; logits or log-probabilities, positive fixed at 0)
    that maximise the mean of accuracy and macro-F1 on these rows (macro-F1 alone is flat near its top, so it buys its
    last hundredths with whole points of accuracy).

    A grid search; ties go to the smallest offsets, so with no gain the rule stays argmax.
    """
    grid = torch.linspace(-1.0, 3.0, 17) if grid is None else grid
    order = sorted(((abs(a) + abs(b), float(a), float(b)) for a in grid.tolist() for b in grid.tolist()))
    biases = torch.tensor([[a, b, 0.0] for _, a, b in order])  # (K, 3)
    preds = (z.unsqueeze(0) + biases.unsqueeze(1)).argmax(-1)  # (K, N)
    score = (_macro_f1_many(preds, labels) + (preds == labels.unsqueeze(0)).float().mean(1)) / 2
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


def cross_fit(kind: str, members: list[np.ndarray], y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """OOF probabilities of the ``kind`` decision: the rows of each fold combined by a decision fitted on the rows of
    the other folds."""
    out = np.zeros_like(members[0])
    for f in np.unique(fold_of):
        test = fold_of == f
        d = Decision(kind).fit([m[~test] for m in members], y[~test])
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
