"""Metrics and report tables computed from labels and predictions alone."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from .data import LABEL2ID, LABELS

METRIC_COLUMNS = ["accuracy", "macro_f1", "weighted_f1", *(f"f1_{c}" for c in LABELS)]


def metrics(y_true, y_pred) -> dict:
    """Accuracy, macro-F1, weighted-F1 and per-class precision/recall/F1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(LABELS)))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "weighted_f1": f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
    }
    for k, c in enumerate(LABELS):
        out.update({f"precision_{c}": p[k], f"recall_{c}": r[k], f"f1_{c}": f[k]})
    return {k: float(v) for k, v in out.items()}


def confusion(y_true, y_pred) -> pd.DataFrame:
    """Confusion matrix with true classes as rows and predictions as columns."""
    m = confusion_matrix(y_true, y_pred, labels=list(range(len(LABELS))))
    return pd.DataFrame(m, index=pd.Index(LABELS, name="true"), columns=pd.Index(LABELS, name="predicted"))


def always_positive(labels) -> dict:
    """The baseline that answers "positive" for every row."""
    labels = np.asarray(labels)
    return metrics(labels, np.full_like(labels, LABEL2ID["positive"]))


def fold_stats(cv: pd.DataFrame, columns: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and std (ddof 1; 0 for one fold) per model of a per-fold table: the one source of fold means."""
    g = cv.groupby("model", sort=False)[columns or METRIC_COLUMNS]
    return g.mean(), g.std(ddof=1).fillna(0.0)


def summarize(cv: pd.DataFrame, columns: list[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """Mean ± std over folds per model (:func:`fold_stats`), as strings fit for a report table (row order kept)."""
    mean, std = fold_stats(cv, columns)
    return mean.round(digits).astype(str) + " ± " + std.round(digits).astype(str)
