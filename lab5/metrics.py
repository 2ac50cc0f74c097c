"""Metrics and report tables computed from labels and predictions alone (pure: no model, no data files): scores
from scikit-learn, the always-positive baseline, summaries over folds, paired per-fold differences, and row-by-row
comparisons of two models."""
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
    """Mean and std (ddof 1; 0 for a single fold) over the folds of each model of a per-fold CV table (row order
    kept): the one computation behind every table of fold means, so a mean is rounded the same way wherever shown."""
    g = cv.groupby("model", sort=False)[columns or METRIC_COLUMNS]
    return g.mean(), g.std(ddof=1).fillna(0.0)


def summarize(cv: pd.DataFrame, columns: list[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """Mean ± std over folds per model (:func:`fold_stats`), as strings fit for a report table (row order kept)."""
    mean, std = fold_stats(cv, columns)
    return mean.round(digits).astype(str) + " ± " + std.round(digits).astype(str)


def fold_differences(cv: pd.DataFrame, row: str, control: str, metric: str = "accuracy") -> pd.Series:
    """``row`` minus ``control`` in ``metric`` on each fold of the per-fold table ``cv`` (indexed by fold)."""
    wide = cv.pivot_table(index="fold", columns="model", values=metric, sort=False)
    return wide[row] - wide[control]


def paired_differences(cv: pd.DataFrame, against: dict[str, str], metric: str = "accuracy") -> pd.DataFrame:
    """Per-fold differences in ``metric`` of each model against its control (``{model: control}``): every model is
    scored on the same folds, so the paired difference is what tells a real gain from fold-to-fold noise. One row per
    model: the mean difference, its smallest and largest fold, and on how many folds the model did better."""
    rows = []
    for model, control in against.items():
        d = fold_differences(cv, model, control, metric)
        rows.append({"model": model, "control": control, "mean": d.mean(), "min": d.min(), "max": d.max(),
                     "better_folds": int((d > 0).sum()), "folds": len(d)})
    return pd.DataFrame(rows).set_index("model")


def paired_table(cv: pd.DataFrame, pairs: dict[str, tuple[str, str]],
                 metrics: tuple[str, ...] = ("accuracy", "macro_f1")) -> pd.DataFrame:
    """One row per labelled ``(row, control)`` pair of the per-fold table ``cv``: for each metric, the mean paired
    difference over the folds in points (hundredths) and the folds the row won, as ``won/folds``."""
    out = {}
    for label, (row, control) in pairs.items():
        out[label] = {}
        for m in metrics:
            d = paired_differences(cv, {row: control}, m).iloc[0]
            out[label][f"Δ {m.replace('_', '-')} (points)"] = round(100 * d["mean"], 2)
            out[label][f"{m.replace('_', '-')}: folds won"] = f"{d.better_folds}/{d.folds}"
    return pd.DataFrame(out).T


def fold_gap(a: pd.DataFrame, b: pd.DataFrame, rows: list[str], columns: tuple[str, ...] = ("accuracy", "macro_f1")) -> float:
    """The largest absolute difference, over ``rows``, their folds and ``columns``, between two per-fold tables that
    both hold those rows (a table made elsewhere, such as a committed one, against the same rows computed here): 0
    when they are the same runs; a KeyError names a row or fold that one of them lacks."""
    def wide(cv: pd.DataFrame) -> pd.DataFrame:
        if missing := [r for r in rows if r not in set(cv.model)]:
            raise KeyError(f"no row {missing[0]!r} in the table")
        return cv[cv.model.isin(rows)].set_index(["model", "fold"])[list(columns)].sort_index()

    left, right = wide(a), wide(b)
    if not left.index.equals(right.index):
        raise KeyError("the tables hold other folds of the same rows")
    return float((left - right).abs().to_numpy().max())


def paired_comparison(y, pred_a, pred_b, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """How often each of two models is right where the other is wrong, per true class."""
    y, a, b = map(np.asarray, (y, pred_a, pred_b))
    rows = []
    for k, c in enumerate(LABELS):
        m = y == k
        rows.append({"class": c, "rows": int(m.sum()), f"only {names[0]} right": int(((a == y) & (b != y) & m).sum()),
                     f"only {names[1]} right": int(((b == y) & (a != y) & m).sum()), "both right": int(((a == y) & (b == y) & m).sum())})
    return pd.DataFrame(rows).set_index("class")


def decision_changes(y, control, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """How often each model's label differs from the ``control`` model's on the same rows, and whether for the
    better: rows changed, fixed (control wrong, model right), broken (control right, model wrong), and net."""
    y, control = np.asarray(y), np.asarray(control)
    rows = {}
    for name, p in preds.items():
        p = np.asarray(p)
        fixed, broken = int(((control != y) & (p == y)).sum()), int(((control == y) & (p != y)).sum())
        rows[name] = {"changed": int((p != control).sum()), "fixed": fixed, "broken": broken, "net": fixed - broken}
    return pd.DataFrame.from_dict(rows, orient="index")
