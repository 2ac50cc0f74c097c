"""A seeded hyper-parameter search of the heads, scored by cross-validation (``python -m lab5 tune``).

Trials are scored on folds of :data:`SEARCH_FOLD_SEED`, and the chosen values re-scored on the report folds to
show the optimism of picking the best of many.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .errors import ConfigError

#: the values searched, per :class:`lab5.config.Config` field (every default is one of them)
SPACE: dict[str, tuple] = {"lr": (3e-4, 1e-3, 3e-3), "dropout": (0.1, 0.3, 0.5), "hidden": (128, 256, 512),
                           "attention_hidden": (64, 128, 256), "weight_decay": (0.0, 0.01, 0.1),
                           "epochs": (2, 3, 4, 6), "batch_size": (32, 64, 128)}
#: the per-fold table of the final model at its chosen values on the report's folds
RESCORE_FILE = "05_tuning_rescore.csv"
#: the fold draw the search scores on (the report's rows use ``Config.fold_seed`` 0)
SEARCH_FOLD_SEED = 1
#: the heads whose width is ``attention_hidden``, not ``hidden``
ATTENTION_MODELS = ("cross_attention",)


def space(model: str) -> dict[str, tuple]:
    """The part of :data:`SPACE` that ``model``'s heads read."""
    attention = [h in ATTENTION_MODELS for h in model.split("+")]
    read = {"hidden": not all(attention), "attention_hidden": any(attention)}
    return {k: v for k, v in SPACE.items() if read.get(k, True)}


def trials_file(model: str) -> str:
    """The name of the trials table of a search of ``model``."""
    return f"05_tuning_trials_{model.replace('+', '_')}.csv"


#: what a trial is ranked by: mean fold accuracy (the course's metric), then mean fold macro-F1
RANK_BY = ("accuracy", "macro_f1")


def trial_configs(cfg: Config, trials: int, seed: int = 0) -> dict[int, Config]:
    """Trial 0: ``cfg`` itself; then distinct points of :func:`space` drawn by ``seed``."""
    searched = space(cfg.model)
    own = tuple(getattr(cfg, k) for k in searched)
    grid = [p for p in itertools.product(*searched.values()) if p != own]
    if not 1 <= trials <= len(grid) + 1:
        raise ConfigError(f"--trials must be between 1 and {len(grid) + 1} (the points of the search space), not {trials}")
    picks = np.random.default_rng(seed).choice(len(grid), size=trials - 1, replace=False)
    base = cfg.replace(fold_seed=SEARCH_FOLD_SEED)
    return {0: base, **{t + 1: base.replace(**dict(zip(searched, grid[i]))) for t, i in enumerate(sorted(picks))}}


def search(ds, cfg: Config, trials: int, seed: int = 0) -> pd.DataFrame:
    """Cross-validate every trial: its values, mean fold scores, accuracy std and rank (1: chosen)."""
    from .evaluation import cv_runs

    configs = trial_configs(cfg, trials, seed)
    runs = cv_runs(ds, configs)
    rows = [{"trial": t, **{k: getattr(c, k) for k in space(cfg.model)},
             "accuracy": r.folds.accuracy.mean(), "accuracy_std": r.folds.accuracy.std(),
             "macro_f1": r.folds.macro_f1.mean(), "f1_neutral": r.folds.f1_neutral.mean()}
            for (t, c), r in zip(configs.items(), runs.values())]
    table = pd.DataFrame(rows)
    order = table.sort_values(list(RANK_BY), ascending=False, kind="stable").index
    table.loc[order, "rank"] = range(1, len(table) + 1)
    meta = {"model": cfg.model, "text_encoder": cfg.text_encoder, "fold_seed": SEARCH_FOLD_SEED, "search_seed": seed}
    return table.astype({"rank": int}).assign(**meta)


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The best-ranked row of a trials table."""
    return trials.loc[trials["rank"].idxmin()]


def chosen(trials: pd.DataFrame) -> dict:
    """The values of the best-ranked trial, as Config fields (those of the searched model's :func:`space`)."""
    best = best_trial(trials)
    return {k: type(v[0])(best[k]) for k, v in space(best["model"]).items()}


def search_summary(searches: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """One row per committed search: trials, defaults' and chosen mean accuracy, defaults' rank, chosen values."""
    rows = {}
    for model, t in searches.items():
        if t is not None:
            d, b = t[t.trial == 0].iloc[0], best_trial(t)
            rows[model] = {"trials": len(t), "defaults: accuracy": d.accuracy, "chosen: accuracy": b.accuracy,
                           "defaults' rank": int(d["rank"]), "chosen values": chosen(t)}
    return pd.DataFrame(rows).T


def read_table(path: Path) -> pd.DataFrame | None:
    """A committed or written table (None when there is none)."""
    return pd.read_csv(path) if Path(path).is_file() else None


def table_path(cfg: Config, ds, name: str) -> Path:
    """Where a command wrote the table ``name`` for ``ds``: the output root's figures, else the committed one."""
    from .outputs import committed, is_course_data, output_root

    path = output_root(cfg, ds).figures / name
    if path.is_file() or not is_course_data(ds):
        return path
    return committed(f"figures/{name}") or path
