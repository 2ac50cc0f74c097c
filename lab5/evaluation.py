"""Metrics (from scikit-learn), stratified k-fold cross-validation with its result cache, the always-positive
baseline, and per-row comparisons of models."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, train_test_split

from .batches import make_data
from .config import Config
from .data import LABEL2ID, LABELS, TRAIN_FILE, Dataset
from .errors import ConfigError, DataError
from .features import Features, feature_fields, load_features
from .io import atomic_write_bytes
from .models import build_model
from .runtime import numerics, versions
from .splits import get_split
from .training import fit, predict_logits

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


def cross_validate(ds: Dataset, configs: dict[str, Config], *, cache: bool = True) -> pd.DataFrame:
    """Stratified k-fold CV on all labelled rows of each named config (frozen-feature path).

    In every fold a stratified 10% of the training folds is held out for early stopping, so the evaluation fold is
    never looked at while training. Returns one row per (name, fold) with :data:`METRIC_COLUMNS`.

    With ``cache``, each run's fold metrics are stored under ``<cache>/cv/`` keyed by everything they depend on
    (see :func:`cv_key`), so re-running a notebook re-reads them instead of training again.
    """
    for c in configs.values():
        if c.finetune:
            raise ConfigError("cross-validation runs on cached features; drop --finetune")
        check_cv_rows(ds, c.folds)
    rows, loaded = [], {}
    for name, c in configs.items():
        fields = feature_fields(c)
        if fields not in loaded:
            loaded = {fields: load_features(ds, c)}  # one feature set in memory at a time
        feats = loaded[fields]
        path = Path(c.cache) / "cv" / f"{cv_key(c, ds, feats)}.json"
        done = _read_cv(path) if cache else None
        if done is None:
            done = _cross_validate_one(c, ds, feats)
            if cache:
                atomic_write_bytes(path, json.dumps(done).encode())
        rows += [{"model": name, **r} for r in done]
    return pd.DataFrame(rows)


def check_cv_rows(ds: Dataset, k: int) -> None:
    """Refuse, with a DataError, a labels file too small for ``k``-fold CV with its early-stopping carve-out."""
    fewest = int(ds.train.label.value_counts().reindex(range(len(LABELS)), fill_value=0).min())
    if fewest < k or len(ds.train) * (k - 1) / k < 30:
        raise DataError(f"{ds.root / TRAIN_FILE}: {len(ds.train)} labelled rows are too few for {k}-fold cross-validation "
                        f"(each class needs at least {k} rows, each training part at least 30)")


def _cross_validate_one(c: Config, ds: Dataset, feats: Features) -> list[dict]:
    guids = ds.train.guid.to_numpy()
    y = ds.train.label.to_numpy()
    rows = []
    for f, (tr, te) in enumerate(folds(y, c.folds, c.seed)):
        inner_tr, inner_va = train_test_split(tr, test_size=0.1, random_state=c.seed, stratify=y[tr])
        model = build_model(c, feats.dims())
        fit(model, make_data(c, ds, guids[inner_tr], y[inner_tr], feats), make_data(c, ds, guids[inner_va], y[inner_va], feats), c)
        pred = predict_logits(model, make_data(c, ds, guids[te], y[te], feats), c).argmax(1).numpy()
        rows.append({"fold": f, **metrics(y[te], pred)})
    return rows


#: Bump when training or scoring semantics change (the loop, a head, the fold recipe, the lexicon scores):
#: every cached CV result is then recomputed. Source edits that keep the numbers (comments, moves) keep the cache.
CV_CACHE_VERSION = 1
#: libraries whose versions can change a CV result (part of its cache key)
CV_LIBRARIES = ("torch", "numpy", "scikit-learn", "vaderSentiment")


def cv_key(c: Config, ds, feats) -> str:
    """A fingerprint of what a CV result depends on: :data:`CV_CACHE_VERSION`, the config (less paths and progress
    bars), the feature cache keys, the labelled guids, the library versions and the CPU numerics in force."""
    conf = {k: v for k, v in c.to_dict().items() if k not in ("data", "cache", "out_dir", "progress")}
    labels = list(zip(ds.train.guid, ds.train.label.astype(int).tolist()))
    blob = json.dumps({"version": CV_CACHE_VERSION, "config": conf, "features": [feats.text.key, feats.image.key],
                       "labels": labels, "libraries": versions(*CV_LIBRARIES), "numerics": numerics()},
                      sort_keys=True, default=str)
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


def validation_predictions(model, cfg: Config, ds: Dataset, features: Features | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) of ``model`` on the stored validation split."""
    val = list(get_split(ds, cfg.cache).val)
    y = ds.train.set_index("guid").loc[val, "label"].to_numpy()
    pred = predict_logits(model, make_data(cfg, ds, val, y, features, model), cfg).argmax(1).numpy()
    return y, pred


def misclassified(ds: Dataset, y, pred, n: int = 8, seed: int = 0, cache: Path | None = None) -> pd.DataFrame:
    """A seeded sample of validation tweets the model got wrong (true, predicted, text)."""
    val = list(get_split(ds, cache).val)
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
