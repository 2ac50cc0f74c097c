"""Metrics (from scikit-learn), stratified k-fold cross-validation, and the always-positive baseline."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, train_test_split

from .config import Config
from .data import LABEL2ID, LABELS
from .io import atomic_write_bytes

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


def folds(labels, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded k-fold (train index, test index) pairs."""
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(labels)), labels))


def cross_validate(cfg: Config, ds, features, models: list[str] | None = None, *, configs: dict | None = None,
                   cache: bool = True) -> pd.DataFrame:
    """Stratified k-fold CV of each model on all labelled rows (frozen-feature path).

    In every fold a stratified 10% of the training folds is held out for early stopping, so the evaluation
    fold is never looked at while training. ``configs`` maps a row name to its own Config (for ablations);
    ``models`` names models to run with ``cfg``. Returns one row per (model, fold) with :data:`METRIC_COLUMNS`.

    With ``cache``, each run's fold metrics are stored under ``cfg.cache/cv/`` keyed by everything they depend on
    (see :func:`cv_key`), so re-running a notebook re-reads them instead of training again.
    """
    runs = dict(configs or {})
    for m in models or []:
        runs[m] = cfg.replace(model=m)
    rows = []
    for name, c in runs.items():
        feats = features(c) if callable(features) else features
        path = Path(c.cache) / "cv" / f"{cv_key(c, ds, feats)}.json"
        done = _read_cv(path) if cache else None
        if done is None:
            done = _cross_validate_one(c, ds, feats)
            if cache:
                atomic_write_bytes(path, json.dumps(done).encode())
        rows += [{"model": name, **r} for r in done]
    return pd.DataFrame(rows)


def _cross_validate_one(c: Config, ds, feats) -> list[dict]:
    from .training import fit, make_data, new_classifier, predict_logits

    guids = ds.train.guid.to_numpy()
    y = ds.train.label.to_numpy()
    rows = []
    for f, (tr, te) in enumerate(folds(y, c.folds, c.seed)):
        inner_tr, inner_va = train_test_split(tr, test_size=0.1, random_state=c.seed, stratify=y[tr])
        model = new_classifier(c, *feats.dims(), seq_dims=feats.seq_dims())
        fit(model, make_data(c, ds, guids[inner_tr], y[inner_tr], feats), make_data(c, ds, guids[inner_va], y[inner_va], feats), c)
        pred = predict_logits(model, make_data(c, ds, guids[te], y[te], feats), c).argmax(1).numpy()
        rows.append({"fold": f, **metrics(y[te], pred)})
    return rows


#: the modules whose code decides a CV result; their source is part of the CV cache key
_CV_SOURCES = ("models.py", "training.py", "evaluation.py", "encoders.py")


def cv_key(c: Config, ds, feats) -> str:
    """A fingerprint of what a CV result depends on: the config (less paths and progress bars), the feature
    cache keys, the labelled guids and the source of the modules that train and score."""
    conf = {k: v for k, v in c.to_dict().items() if k not in ("data", "cache", "progress")}
    code = [(Path(__file__).parent / n).read_bytes().decode() for n in _CV_SOURCES]
    labels = list(zip(ds.train.guid, ds.train.label.astype(int).tolist()))
    blob = json.dumps([conf, feats.text.key, feats.image.key, labels, code], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_cv(path: Path) -> list[dict] | None:
    try:
        rows = json.loads(path.read_text())
        return rows if isinstance(rows, list) and all(set(METRIC_COLUMNS) <= set(r) for r in rows) else None
    except (OSError, ValueError):
        return None


def summarize(cv: pd.DataFrame, columns: list[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """Mean ± std over folds per model, as strings fit for a report table (row order kept)."""
    columns = columns or METRIC_COLUMNS
    g = cv.groupby("model", sort=False)[columns]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    return mean.round(digits).astype(str) + " ± " + std.round(digits).astype(str)


def baseline_row(labels, k: int, seed: int) -> pd.DataFrame:
    """Always-positive scored on the same folds as the models, as CV rows (model ``always_positive``)."""
    labels = np.asarray(labels)
    return pd.DataFrame([{"model": "always_positive", "fold": f, **always_positive(labels[te])}
                         for f, (_, te) in enumerate(folds(labels, k, seed))])


def validation_predictions(model, cfg: Config, ds, features=None) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) of ``model`` on the committed validation split."""
    from .data import get_split
    from .training import make_data, predict_logits

    val = list(get_split(ds).val)
    y = ds.train.set_index("guid").loc[val, "label"].to_numpy()
    enc = (model.text_encoder, model.image_encoder) if cfg.finetune else None
    pred = predict_logits(model, make_data(cfg, ds, val, y, features, enc), cfg).argmax(1).numpy()
    return y, pred


def misclassified(ds, y, pred, n: int = 8, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of validation tweets the model got wrong (true, predicted, text)."""
    from .data import get_split

    val = list(get_split(ds).val)
    texts = ds.train.set_index("guid").loc[val, "text"].to_numpy()
    wrong = np.flatnonzero(np.asarray(y) != np.asarray(pred))
    pick = np.sort(np.random.default_rng(seed).choice(wrong, size=min(n, len(wrong)), replace=False))
    return pd.DataFrame({"guid": [val[i] for i in pick], "true": [LABELS[y[i]] for i in pick],
                         "predicted": [LABELS[pred[i]] for i in pick], "text": [texts[i][:100] for i in pick]})


def paired_comparison(y, pred_a, pred_b, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """How often each of two models is right where the other is wrong, per true class."""
    y, a, b = map(np.asarray, (y, pred_a, pred_b))
    rows = []
    for k, c in enumerate(LABELS):
        m = y == k
        rows.append({"class": c, "rows": int(m.sum()), f"only {names[0]} right": int(((a == y) & (b != y) & m).sum()),
                     f"only {names[1]} right": int(((b == y) & (a != y) & m).sum()), "both right": int(((a == y) & (b == y) & m).sum())})
    return pd.DataFrame(rows).set_index("class")
