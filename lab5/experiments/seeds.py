"""How much a CV mean moves with the training seed and the fold draw: notebook 5's headline rows cross-validated again
over seeds, into a per-fold table like the one it reads (``figures/05_seed_repeats.csv``); and the same check of a
candidate that beat the final model on one seed (``figures/05_seed_candidates.csv``)::

    python -m lab5.experiments.seeds --seeds 1,2 --fold-seeds 1,2
    python -m lab5.experiments.seeds --rows candidates --seeds 1,2 --fold-seeds 1,2

Each row runs at its own (seed, fold seed) and at each of ``--seeds`` on the same folds and each of ``--fold-seeds``
with the same training seed: a cross through the config's own pair, not a grid. The committed table was made by
``python -m lab5 cv --rows headline`` (see its ``.json``); it also holds the final model with offsets tuned for
macro-F1 alone, an option deleted since, so the command writes under ``runs/`` unless told otherwise.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from ..ablation import MEAN, NO_LEXICON, passes, story
from ..config import Config
from ..evaluation import cv_runs
from ..tuning import chosen, read_table, table_path, trials_file
from . import parser, run, seed_list
from .rows import FOURTH_HEAD, SEARCHES, experiment_rows

#: the rows repeated: notebook 5's headline rows (the committed table also holds the offsets row, whose code left)
REPEATED = ("text", "image", "concat", "cross_attention", "gated", "late", MEAN)
#: the committed seed repeats of notebook 5's headline rows, in the figures folder
REPEATS_FILE = "05_seed_repeats.csv"
#: the ideas that beat the final model on 4 of 5 folds on one seed and whose code remains, beside the final model
CANDIDATES = (MEAN, FOURTH_HEAD)
#: the committed check of :data:`CANDIDATES` over seeds, in the figures folder
CANDIDATES_FILE = "05_seed_candidates.csv"
#: the changes confirmed over training seeds (``--rows confirm --seeds 1,2``): the parts of the final model, each
#: against the model without it, the concat-or-attention question on equal inputs, and the rows that passed the
#: one-seed screen and whose code remains: {what: (row, control)}
CONFIRMATIONS = {"averaging the three heads": (MEAN, "final − averaging (late heads only)"),
                 "averaging the three heads, on MiniLM (against late)": ("ensemble on MiniLM", "late"),
                 "mpnet's heads beside MiniLM's": (MEAN, "ensemble on MiniLM"),
                 "the image": (MEAN, "final − image (text heads only)"),
                 "VADER scores": (MEAN, "final − VADER lexicon"),
                 "cross-attention against concat, equal inputs": ("cross_attention", NO_LEXICON),
                 "gated, 2 epochs": ("gated, 2 epochs", "gated"),
                 "gated + late, searched values": ("gated+late on MiniLM, tuned values", "gated+late on MiniLM")}
CONFIRM_FILE = "05_seed_confirmations.csv"
#: what ``--rows`` names: the rows and the file they go to by default
ROW_SETS = {"headline": (REPEATED, REPEATS_FILE), "candidates": (CANDIDATES, CANDIDATES_FILE),
            "confirm": (tuple(dict.fromkeys(r for pair in CONFIRMATIONS.values() for r in pair)), CONFIRM_FILE)}


def seed_pairs(seed: int, fold_seed: int, seeds: list[int], fold_seeds: list[int]) -> list[tuple[int, int]]:
    """(seed, fold seed) pairs of a repeat: each of ``seeds`` on the folds of ``fold_seed``, and each of
    ``fold_seeds`` with the training seed ``seed`` (a cross through the config's own pair, not a grid), in order."""
    return list(dict.fromkeys([(seed, fold_seed), *((s, fold_seed) for s in seeds), *((seed, f) for f in fold_seeds)]))


def repeats(ds, configs: dict[str, Config], seeds: list[int], fold_seeds: list[int]) -> pd.DataFrame:
    """Cross-validate every named config at every pair of :func:`seed_pairs` (one pool of workers, the CV cache):
    one row per (model, seed, fold_seed, fold) with the fold's metrics."""
    runs = {}
    for name, c in configs.items():
        for s, f in seed_pairs(c.seed, c.fold_seed, seeds, fold_seeds):
            runs[(name, s, f)] = c.replace(seed=s, fold_seed=f)
    done = cv_runs(ds, runs)
    return pd.concat([r.folds.assign(model=n, seed=s, fold_seed=f) for (n, s, f), r in done.items()], ignore_index=True)


def seed_spread(table: pd.DataFrame, metric: str = "accuracy", seed: int = 0, fold_seed: int = 0) -> pd.DataFrame:
    """Per model (order kept): the CV mean of ``metric`` at (``seed``, ``fold_seed``); the mean and the std of the CV
    means over training seeds on those folds, and over fold seeds with that training seed; and the std over folds
    (averaged over the runs), the spread a single CV shows."""
    runs = table.groupby(["model", "seed", "fold_seed"], sort=False)[metric].agg(["mean", "std"]).reset_index()
    rows = {}
    for model, g in runs.groupby("model", sort=False):
        by_seed, by_folds = g[g.fold_seed == fold_seed], g[g.seed == seed]
        base = g[(g.seed == seed) & (g.fold_seed == fold_seed)]["mean"]
        rows[model] = {"CV mean": base.iloc[0] if len(base) else np.nan,
                       "training seeds": len(by_seed), "mean over them": by_seed["mean"].mean(), "std over them": by_seed["mean"].std(),
                       "fold seeds": len(by_folds), "mean over those": by_folds["mean"].mean(), "std over those": by_folds["mean"].std(),
                       "std over folds": g["std"].mean()}
    return pd.DataFrame(rows).T.astype({"training seeds": int, "fold seeds": int})


def paired_over_seeds(table: pd.DataFrame, row: str, control: str) -> pd.DataFrame:
    """``row`` against ``control`` on every (seed, fold seed, fold) they share in a :func:`repeats` table: per
    (seed, fold seed) and over all of them, the mean difference in accuracy and macro-F1 (points) and the folds where
    ``row``'s accuracy is higher."""
    keys = ["seed", "fold_seed", "fold"]
    both = table[table.model == row].merge(table[table.model == control], on=keys, suffixes=("", "_control"))
    d = both.assign(accuracy=100 * (both.accuracy - both.accuracy_control),
                    macro_f1=100 * (both.macro_f1 - both.macro_f1_control), won=both.accuracy > both.accuracy_control)

    def line(g: pd.DataFrame) -> pd.Series:
        return pd.Series({"Δ accuracy (points)": round(g.accuracy.mean(), 2), "Δ macro-F1 (points)": round(g.macro_f1.mean(), 2),
                          "accuracy: folds won": f"{int(g.won.sum())}/{len(g)}"})

    per_pair = {f"seed {s}, fold seed {f}": line(g) for (s, f), g in d.groupby(["seed", "fold_seed"])}
    return pd.DataFrame({**per_pair, "all": line(d)}).T


def confirmations(table: pd.DataFrame, pairs: dict[str, tuple[str, str]] = CONFIRMATIONS) -> pd.DataFrame:
    """Each (row, control) of ``pairs`` over every (seed, fold seed, fold) of a :func:`repeats` table: the mean
    differences (points), the seed-folds won in accuracy, and whether it passes the adoption rule
    (:func:`lab5.ablation.passes`)."""
    keys = ["seed", "fold_seed", "fold"]
    out = {}
    for what, (row, control) in pairs.items():
        both = table[table.model == row].merge(table[table.model == control], on=keys, suffixes=("", "_control"))
        d = both.accuracy - both.accuracy_control
        out[what] = {"row": row, "control": control, "Δ accuracy (points)": round(100 * d.mean(), 2),
                     "Δ macro-F1 (points)": round(100 * (both.macro_f1 - both.macro_f1_control).mean(), 2),
                     "seed-folds won": f"{int((d > 0).sum())}/{len(d)}", "confirmed": passes(d)}
    return pd.DataFrame(out).T


def tried_with_stages(cfg: Config, ds, cv: pd.DataFrame, kept: tuple[str, ...]) -> pd.DataFrame:
    """Notebook 5's "also tried" table (:func:`lab5.ablation.also_tried`): every row of the committed experiment
    tables but ``kept`` beside its control in the per-fold ``cv``, with the stage it reached (the confirmations over
    seeds from :data:`CONFIRM_FILE` and :data:`CANDIDATES_FILE`) and what remakes it (HEAD for the rows
    :func:`lab5.experiments.rows.experiment_rows` makes, else the commit in each table's provenance)."""
    from ..ablation import EXPERIMENTS_FILE, FINETUNED_FILE, also_tried
    from ..runtime import made_by

    def table(name: str):
        return read_table(table_path(cfg, ds, name))

    searched = {m: chosen(t) for m in SEARCHES if (t := table(trials_file(m))) is not None}
    confirm, candidates = table(CONFIRM_FILE), table(CANDIDATES_FILE)
    checked = {**({r.row: r.confirmed for r in confirmations(confirm).itertuples()} if confirm is not None else {}),
               **({FOURTH_HEAD: confirmations(candidates, {"": (FOURTH_HEAD, MEAN)}).confirmed.iloc[0]}
                  if candidates is not None else {})}
    made = {made_by(table_path(cfg, ds, n)): table(n) for n in (EXPERIMENTS_FILE, FINETUNED_FILE)}
    return also_tried(cv, made, kept, checked, tuple(experiment_rows(cfg, searched)[0]))


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m lab5.experiments.seeds", __doc__)
    p.add_argument("--seeds", type=seed_list, default=[], help="comma-separated training seeds, on the folds of fold seed 0")
    p.add_argument("--fold-seeds", type=seed_list, default=[], help="comma-separated fold seeds, with training seed 0")
    p.add_argument("--rows", choices=ROW_SETS, default="headline",
                   help=f"headline: notebook 5's headline rows; candidates: the final model beside {FOURTH_HEAD!r}; "
                        "confirm: the rows of CONFIRMATIONS")

    def build(args, cfg: Config, ds) -> tuple[pd.DataFrame, str]:
        searches = {m: read_table(table_path(cfg, ds, trials_file(m))) for m in SEARCHES}
        rows = {**story(cfg).rows(), **experiment_rows(cfg, {m: chosen(t) for m, t in searches.items() if t is not None})[0]}
        table = repeats(ds, {name: rows[name] for name in ROW_SETS[args.rows][0]}, args.seeds, args.fold_seeds)
        shown = [seed_spread(table).round(4)]
        if args.rows == "candidates":
            shown.append(paired_over_seeds(table, FOURTH_HEAD, MEAN))
        if args.rows == "confirm":
            shown.append(confirmations(table))
        return table, "\n".join(t.to_string() for t in shown)

    return run(p, argv, f"per-fold table (CSV; default <output root>/runs/seeds/{REPEATS_FILE} or {CANDIDATES_FILE})",
               lambda root, args: root.run("seeds") / ROW_SETS[args.rows][1], build)


if __name__ == "__main__":
    sys.exit(main())
