"""Nested cross-validation of the way ``predict`` makes the submitted file, against refitting on all rows.

For each outer fold of the final model's 5-fold CV, its training part plays the labelled rows and the outer fold the
test set, and both procedures run on the training part only:

* **bagged** (what ``predict`` does): an inner 5-fold CV of every member; the inner fold models' mean probabilities on
  the outer fold, decided by the rule fitted on the inner out-of-fold rows;
* **refit** (what ``predict`` did before): every member trained once on the whole training part, decided by the
  same inner-OOF rule.

Each is scored under the plain mean and under the offsets (:mod:`lab5.experiments.offsets`) on the outer fold, which
no model and no rule saw. One row per (seed, outer fold, procedure):

    python -m lab5.experiments.nested --seeds 0,1,2     (writes figures/06_nested_cv.csv and its .json)
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..batches import make_data
from ..config import Config
from ..evaluation import folds, train_folds
from ..features import load_features
from ..metrics import metrics
from ..models import build_model, member_configs
from ..parallel import run_all
from ..training import fit, member_probabilities
from . import parser, run, seed_list
from .offsets import fit_offsets, with_offsets

PROCEDURES = ("bagged", "refit")
#: the committed table notebook 6 reads
NESTED_FILE = "06_nested_cv.csv"
RULES = ("mean", "mean+offsets")


def nested_rows(ds, cfg: Config) -> pd.DataFrame:
    """The nested CV of ``cfg`` (an ensemble decided from its members) on ``ds``: one row per (outer fold,
    procedure, rule) with the metrics of :func:`lab5.metrics.metrics` on the outer fold."""
    y_all = ds.train.label.to_numpy()
    members = member_configs(cfg)
    feats = {m: load_features(ds, c) for m, c in members.items()}
    rows = []
    for k, (tr, te) in enumerate(folds(y_all, cfg.folds, cfg.fold_seed)):
        part = SimpleNamespace(train=ds.train.iloc[tr].reset_index(drop=True),
                               test=ds.train.iloc[te].reset_index(drop=True))
        inner = train_folds([(feats[m], {m: c}) for m, c in members.items()], part)
        oof = [g[m]["probs"] for g, m in zip(inner, members)]
        bagged = [np.asarray(g[m]["test_probs"][members[m].model]) for g, m in zip(inner, members)]
        refit = run_all(lambda m: _refit(members[m], feats[m], part), list(members), cfg.jobs)
        y_in, y_out = part.train.label.to_numpy(), part.test.label.to_numpy()
        for rule in RULES:
            offsets = fit_offsets([np.asarray(p) for p in oof], y_in) if rule == "mean+offsets" else np.zeros(3)
            for name, probs in (("bagged", bagged), ("refit", refit)):
                rows.append({"fold": k, "procedure": name, "rule": rule,
                             **metrics(y_out, with_offsets(probs, offsets).argmax(1))})
    return pd.DataFrame(rows)


def _refit(c: Config, feats, part) -> np.ndarray:
    """One member trained on every row of ``part.train``; its probabilities on ``part.test``."""
    model = build_model(c, feats.dims())
    fit(model, make_data(c.model_group, part, part.train.guid.to_numpy(), part.train.label.to_numpy(), feats), None, c)
    return member_probabilities(model, make_data(c.model_group, part, list(part.test.guid), None, feats), c)[0]


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m lab5.experiments.nested", __doc__)
    p.add_argument("--seeds", type=seed_list, default="0,1,2", help="comma-separated training seeds (the folds keep fold seed 0)")

    def build(args, cfg: Config, ds) -> tuple[pd.DataFrame, str]:
        table = pd.concat([nested_rows(ds, cfg.replace(seed=s)).assign(seed=s) for s in args.seeds], ignore_index=True)
        return table.round(4), summary(table).to_string()

    return run(p, argv, f"per-fold table (CSV; default <output root>/figures/{NESTED_FILE})",
               lambda root, args: root.figures / NESTED_FILE, build)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and macro-F1 of each (procedure, rule): the mean over its seed-folds, their standard deviation (the
    spread over folds), and the standard deviation of the seeds' means (the spread over training seeds)."""
    g = table.groupby(["procedure", "rule"])[["accuracy", "macro_f1"]]
    seeds = table.groupby(["procedure", "rule", "seed"])[["accuracy", "macro_f1"]].mean().groupby(["procedure", "rule"])
    out = pd.concat({"mean": g.mean(), "std over folds": g.std(), "std over seeds": seeds.std()}, axis=1)
    return out.swaplevel(axis=1)[["accuracy", "macro_f1"]].round(4)


if __name__ == "__main__":
    sys.exit(main())
