"""How an ensemble's members become one prediction, and how calibrated probabilities are."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def mean_probabilities(members: list):
    """How an ensemble's members are combined, everywhere: the mean of their class probabilities."""
    return torch.stack(members).mean(0) if isinstance(members[0], torch.Tensor) else np.mean(members, axis=0)


def calibration_bins(p: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per non-empty equal-width confidence bin: lower edge, rows, mean confidence and accuracy."""
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
