"""Stratified k-fold cross-validation on cached features: runner, result cache, learning curves, baseline."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from . import cache as store, profile
from .batches import make_data
from .config import Config
from .data import LABELS, TRAIN_FILE, Dataset
from .decisions import mean_probabilities
from .errors import ConfigError, DataError
from .features import Features, feature_fields, load_features
from .metrics import METRIC_COLUMNS, always_positive, metrics
from .models import build_model, ensemble_members, member_configs, members_of
from .parallel import run_all
from .splits import training_subset
from .training import fit, member_probabilities


def folds(labels, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded k-fold (train, test) index pairs, drawn once per process and read-only."""
    labels = np.asarray(labels)
    return list(_folds(labels.tobytes(), labels.dtype.str, k, seed))


@functools.lru_cache(maxsize=64)
def _folds(labels: bytes, dtype: str, k: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    y = np.frombuffer(labels, dtype=dtype)
    pairs = tuple(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    for a in (a for pair in pairs for a in pair):
        a.setflags(write=False)
    return pairs


@dataclass
class CVRun:
    """One config's CV: fold metrics, OOF probabilities (``ds.train`` order) of the model and its members, and
    each member's test probabilities averaged over its fold models (k-fold bagging).
    """

    folds: pd.DataFrame  # one row per fold: ``fold`` and :data:`METRIC_COLUMNS`
    probs: np.ndarray  # (N, 3) the model's OOF probabilities
    member_probs: dict[str, np.ndarray]  # head name -> (N, 3)
    test_probs: dict[str, np.ndarray] = field(default_factory=dict)  # head name -> (test rows, 3), mean over folds


def cross_validate(ds: Dataset, configs: dict[str, Config], *, cache: bool = True,
                   runs: dict[str, CVRun] | None = None) -> pd.DataFrame:
    """Stratified k-fold CV of each named config: one row per (name, fold) with :data:`METRIC_COLUMNS`."""
    runs = cv_runs(ds, configs, cache=cache) if runs is None else runs
    return pd.concat([runs[name].folds.assign(model=name) for name in configs], ignore_index=True)[["model", "fold", *METRIC_COLUMNS]]


def cv_runs(ds: Dataset, configs: dict[str, Config], *, cache: bool = True) -> dict[str, CVRun]:
    """Stratified k-fold CV of each named config on cached features, each fold trained ``epochs`` epochs.

    With ``cache``, each run is stored under ``<cache>/cv/`` keyed by :func:`cv_key` and read back.
    """
    for c in configs.values():
        if c.finetune:
            raise ConfigError("cross-validation runs on cached features; drop --finetune")
        check_cv_rows(ds, c.folds)
        smallest = _training_part(ds, c)
        if c.train_rows > smallest:
            raise ConfigError(f"--train-rows {c.train_rows} asks for more rows than the {smallest} a training part of "
                              f"{c.folds}-fold cross-validation has")
    # an ensemble's CV is made from its members' runs, which join the plain runs to share features and workers
    members = {n: member_configs(c) for n, c in configs.items() if _decided_from_members(c)}
    plain = {n: c for n, c in configs.items() if n not in members}
    plain.update({(n, m): mc for n, ms in members.items() for m, mc in ms.items()})
    runs: dict = {}
    groups = []  # (feature set, the configs that read it) of every config whose result is not cached yet
    for fields in dict.fromkeys(feature_fields(c) for c in plain.values()):
        group = {n: c for n, c in plain.items() if feature_fields(c) == fields}
        feats = load_features(ds, next(iter(group.values())))
        keys = {n: cv_key(c, ds, feats) for n, c in group.items()}
        paths = {n: store.path(c.cache, "cv", f"{keys[n][0]}.run") for n, c in group.items()}
        todo, read = {}, {}  # by cache file: two names of one configuration are read once, or train once
        for n, c in group.items():
            if paths[n] not in read:
                read[paths[n]] = store.load(paths[n], lambda blob, meta: json.loads(blob)) if cache else None
            if read[paths[n]] is not None:
                runs[n] = _cv_run(read[paths[n]])
            else:
                todo.setdefault(paths[n], (n, c))
        if todo:
            groups.append((feats, group, paths, todo, keys))
    # every untrained fold of every group in one pool of workers, so that no core idles at the end of a group
    results = train_folds([(feats, dict(todo.values())) for feats, _, _, todo, _ in groups], ds)
    for (_, group, paths, todo, keys), group_results in zip(groups, results):
        for path, (n, _) in todo.items():
            if cache:
                store.store(path, json.dumps(group_results[n]).encode(), keys[n][1])
        for n in group:
            if n not in runs:
                runs[n] = _cv_run(group_results[todo[paths[n]][0]])
    for n, ms in members.items():
        runs[n] = _combined_run(ds, configs[n], {m: runs[(n, m)] for m in ms})
    return {name: runs[name] for name in configs}


def _cv_run(d: dict) -> CVRun:
    """A :class:`CVRun` from its cacheable dict (see :func:`train_folds`)."""
    return CVRun(pd.DataFrame(d["folds"]), np.array(d["probs"]), {k: np.array(v) for k, v in d["member_probs"].items()},
                 {k: np.array(v).reshape(-1, len(LABELS)) for k, v in d["test_probs"].items()})


def _decided_from_members(c: Config) -> bool:
    """Whether the CV of ``c`` is made from its members' own runs (an ensemble) rather than by training ``c`` itself."""
    return len(ensemble_members(c)) > 1


def learning_curve_configs(ds: Dataset, configs: dict[str, Config],
                           fractions: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2)) -> dict[tuple[str, int], Config]:
    """The points of a learning curve, by (name, rows trained on), for each of ``fractions`` and in full."""
    if not all(0 < f < 1 for f in fractions):
        raise ConfigError(f"learning-curve fractions must lie between 0 and 1, not {list(fractions)}")
    full = _training_part(ds, next(iter(configs.values())))
    sizes = [*sorted({max(1, round(full * f)) for f in fractions}), full]
    return {(name, n): c.replace(train_rows=0 if n == full else n) for n in sizes for name, c in configs.items()}


def learning_curve(ds: Dataset, configs: dict[str, Config], fractions: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2),
                   runs: dict | None = None) -> pd.DataFrame:
    """Each config cross-validated at each :func:`learning_curve_configs` point on the same test folds."""
    points = learning_curve_configs(ds, configs, fractions)
    runs = cv_runs(ds, points) if runs is None else runs  # one call: the sizes share one pool
    rows = [runs[(name, n)].folds.assign(model=name, train_rows=n) for name, n in points]
    return pd.concat(rows, ignore_index=True)[["model", "train_rows", "fold", *METRIC_COLUMNS]]


def _combined_run(ds: Dataset, c: Config, parts: dict[str, CVRun]) -> CVRun:
    """The CV of a model decided from its members' own CV runs (a member trains exactly as it does alone)."""
    y = ds.train.label.to_numpy()
    members = [r.probs for r in parts.values()]
    split = folds(y, c.folds, c.fold_seed)
    fold_of = np.zeros(len(y), dtype=int)
    for f, (_, te) in enumerate(split):
        fold_of[te] = f
    probs = np.zeros_like(members[0])
    for f in np.unique(fold_of):  # fold by fold, as the CV's numbers were always computed
        probs[fold_of == f] = mean_probabilities([m[fold_of == f] for m in members])
    rows = [{"fold": f, **metrics(y[te], probs[te].argmax(1))} for f, (_, te) in enumerate(split)]
    test = {m: next(iter(r.test_probs.values())) for m, r in parts.items() if r.test_probs}
    return CVRun(pd.DataFrame(rows), probs, {m: r.probs for m, r in parts.items()}, test if len(test) == len(parts) else {})


def check_cv_rows(ds: Dataset, k: int) -> None:
    """Refuse, with a DataError, a labels file too small for ``k``-fold CV."""
    fewest = int(ds.train.label.value_counts().reindex(range(len(LABELS)), fill_value=0).min())
    if fewest < k or len(ds.train) * (k - 1) / k < 30:
        raise DataError(f"{ds.root / TRAIN_FILE}: {len(ds.train)} labelled rows are too few for {k}-fold cross-validation "
                        f"(each class needs at least {k} rows, each training part at least 30)")


def _training_part(ds: Dataset, c: Config) -> int:
    """Rows in the smallest training part of the cross-validation of ``c`` on ``ds`` (its own folds)."""
    return min(len(tr) for tr, _ in folds(ds.train.label.to_numpy(), c.folds, c.fold_seed))


def train_folds(groups: list[tuple[Features, dict[str, Config]]], ds: Dataset) -> list[dict[str, dict]]:
    """Train and score every fold of every config in ``jobs`` workers, longest first (results never depend
    on it); per group, the cacheable result of each config.
    """
    guids = ds.train.guid.to_numpy()
    test_guids = list(ds.test.guid)
    y = ds.train.label.to_numpy()
    tasks = [(g, name, f, tr, te) for g, (_, configs) in enumerate(groups) for name, c in configs.items()
             for f, (tr, te) in enumerate(folds(y, c.folds, c.fold_seed))]
    order = sorted(range(len(tasks)), key=lambda i: -_fold_cost(groups[tasks[i][0]][1][tasks[i][1]]))

    def one_fold(task) -> dict:
        g, name, f, tr, te = task
        feats, c = groups[g][0], groups[g][1][name]
        with profile.stage(f"cv {_stage_name(c)}"):
            tr = tr[training_subset(y[tr], c.train_rows, c.fold_seed)]
            model = build_model(c, feats.dims())
            result = fit(model, make_data(c.model_group, ds, guids[tr], y[tr], feats), None, c)
            members = member_probabilities(model, make_data(c.model_group, ds, guids[te], y[te], feats), c)
            names = list(members_of(model))  # empty for a single classifier
            test = member_probabilities(model, make_data(c.model_group, ds, test_guids, None, feats), c) if test_guids else []
            return {"probs": mean_probabilities(members), "member_probs": dict(zip(names, members)),
                    "test_probs": (dict(zip(names, test)) if names else {c.model: mean_probabilities(test)})
                    if test_guids else {}}

    jobs = max((c.jobs for _, configs in groups for c in configs.values()), default=1)
    with profile.stage(f"cv-wall {len(tasks)} fold trainings"):
        ran = run_all(one_fold, [tasks[i] for i in order], jobs)
    results = [None] * len(tasks)
    for i, r in zip(order, ran):
        results[i] = r
    out = []
    for g, (_, configs) in enumerate(groups):
        group = {}
        for name, c in configs.items():
            mine = [(task, r) for task, r in zip(tasks, results) if task[:2] == (g, name)]
            probs, member_probs, rows = np.zeros((len(y), len(LABELS))), {}, []
            test = {}  # member -> its test probabilities, summed over the fold models, then averaged
            for (_, _, f, _, te), r in mine:
                probs[te] = r["probs"]
                for m, p in r["test_probs"].items():
                    test[m] = test.get(m, 0) + p / len(mine)
                for m, p in r["member_probs"].items():
                    member_probs.setdefault(m, np.zeros_like(probs))[te] = p
                rows.append({"fold": f, **metrics(y[te], r["probs"].argmax(1))})
            member_probs = member_probs or {c.model: probs}
            group[name] = {"folds": rows, "probs": _round(probs),
                           "member_probs": {k: _round(v) for k, v in member_probs.items()},
                           "test_probs": {k: _round(v) for k, v in test.items()}}
        out.append(group)
    return out


def _fold_cost(c: Config) -> float:
    """A rough relative cost of one fold training of ``c``, only for the order folds run in."""
    return (6.0 if "cross_attention" in c.model else 1.0) * c.epochs * (c.train_rows or 3200)


def _stage_name(c: Config) -> str:
    """A CV training's name in the profile: head and text encoder, and what sets it apart from the recipe."""
    return f"{c.model}@{c.text_encoder}" + (f" ({c.train_rows} rows)" if c.train_rows else "")


def _round(p: np.ndarray) -> list:
    return np.round(p, 6).tolist()


def cv_key(c: Config, ds, feats) -> tuple[str, dict]:
    """The key of a CV run and what it is made of: config less RUN_FIELDS, feature keys and guids."""
    conf = c.result_fields()
    labels = list(zip(ds.train.guid, ds.train.label.astype(int).tolist()))
    labels.append(list(ds.test.guid))  # the test rows the fold models predict
    first, *more = (fs.key for fs in feats.texts.values())
    keys = [first, feats.image.key, *more]
    parts = {"kind": "cv", "config": conf, "features": keys, "labels": store.digest(labels)}
    return store.key(parts, store.TRAINING_LIBRARIES)


def baseline_row(labels, k: int, seed: int) -> pd.DataFrame:
    """Always-positive scored on the same folds as the models, as CV rows (model ``always_positive``)."""
    labels = np.asarray(labels)
    return pd.DataFrame([{"model": "always_positive", "fold": f, **always_positive(labels[te])}
                         for f, (_, te) in enumerate(folds(labels, k, seed))])
