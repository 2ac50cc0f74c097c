"""The ablation of notebook 5, as data: each section's rows (a name and the configuration it cross-validates), the
control each row changes one thing of, and the learning curve.

Keeping the rows here, not in notebook cells, gives the notebook and its tests one list, and lets the notebook
train every cross-validation it shows in one pool of workers (:func:`lab5.evaluation.cv_runs` over
:meth:`Ablation.every_run`), so that both cores stay busy from the first fold to the last. Every other idea measured
against these rows is read from committed tables (:func:`also_tried`); their code lives in :mod:`lab5.experiments`.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .config import Config

#: the heads of the final ensemble (``Config.model``)
HEADS = ("cross_attention", "gated", "late")
#: the single models of notebooks 2-4, the first section's rows
SINGLE_MODELS = ("text", "image", "concat", "cross_attention", "reference_gate", "gated", "late")
#: the final model: the ensemble over both text encoders, decided by the plain mean of its members' probabilities
MEAN = "ensemble on MiniLM + mpnet"
FINAL = MEAN
#: concat without the VADER scores: concat on cross-attention's inputs (the scores join the pooled text vector, which
#: cross-attention never reads)
NO_LEXICON = "concat − VADER lexicon"
#: the rows of the final model with one input taken away, each against the final model
WITHOUT = {"final − image (text heads only)": {"model": "text"},
           "final − VADER lexicon": {"text_features": "tokens"},
           "final − mpnet (MiniLM only)": {"text_encoder": "minilm"},
           "final − averaging (late heads only)": {"model": "late"}}
#: the learning curve cuts each training part to these fractions (400, 800 and 1600 of 3200 rows on the course data)
CURVE_FRACTIONS = (1 / 8, 1 / 4, 1 / 2)
#: the committed per-fold tables of the ideas measured against this ablation's rows, each row beside its ``control``
#: (made by the commands of :mod:`lab5.experiments`; see each table's ``.json``)
EXPERIMENTS_FILE = "05_experiments.csv"
FINETUNED_FILE = "05_finetuned_minilm.csv"


#: the adoption rule: a change is adopted when it is better than its control in mean accuracy and on at least this share
#: of the folds they share (4 of 5 on one seed: the screen; 12 of 15 or 20 of 25 seed-folds: the confirmation over
#: seeds); a fold tied with its control is not won
WON_SHARE = 0.8


def passes(differences) -> bool:
    """Whether per-fold accuracy differences (row minus control) pass the adoption rule (:data:`WON_SHARE`)."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    return bool(d.mean() > 0 and (d > 0).sum() >= np.ceil(WON_SHARE * len(d) - 1e-9))


@dataclass(frozen=True)
class Ablation:
    """The rows of each section (``models``, ``attention``, ``encoders``, ``ensembles``, ``without``), each row's
    control (``{row: control row}``), and the configs of the learning curve."""

    sections: dict[str, dict[str, Config]]
    controls: dict[str, str]
    curve: dict[str, Config]

    def rows(self) -> dict[str, Config]:
        """Every row of every section, in the order of the sections."""
        return {name: c for section in self.sections.values() for name, c in section.items()}

    def every_run(self, ds) -> dict:
        """Every cross-validation the notebook shows: the rows, and each learning-curve point (see
        :func:`lab5.evaluation.learning_curve_configs`), to hand to :func:`lab5.evaluation.cv_runs` at once."""
        from .evaluation import learning_curve_configs

        return {**self.rows(), **learning_curve_configs(ds, self.curve, CURVE_FRACTIONS)}


def single_model_base(cfg: Config) -> Config:
    """What every single-model row starts from: the final model's recipe on MiniLM (the final ensemble adds mpnet
    members)."""
    return cfg.replace(text_encoder="minilm")


def story(cfg: Config) -> Ablation:
    """What notebook 5 cross-validates: the single models and concat on cross-attention's inputs (on MiniLM), the
    heads on mpnet, the ensembles, the final model less each of its inputs (:data:`WITHOUT`),
    and the learning curve of the text and the final model."""
    minilm = single_model_base(cfg)
    sections = {"models": {m: minilm.replace(model=m) for m in SINGLE_MODELS},
                "attention": {NO_LEXICON: minilm.replace(model="concat", text_features="tokens")},
                "encoders": {f"{m} on mpnet": cfg.replace(model=m, text_encoder="mpnet") for m in HEADS},
                "ensembles": {"ensemble on MiniLM": minilm, "ensemble on mpnet": cfg.replace(text_encoder="mpnet"),
                              MEAN: cfg},
                "without": {name: cfg.replace(**change) for name, change in WITHOUT.items()}}
    controls = {**{m: "text" for m in SINGLE_MODELS if m != "text"}, NO_LEXICON: "concat",
                **{f"{m} on mpnet": m for m in HEADS},
                "ensemble on MiniLM": "late",  # against its most accurate member
                "ensemble on mpnet": "ensemble on MiniLM", MEAN: "ensemble on MiniLM",
                **{name: FINAL for name in WITHOUT}}
    curve = {"text": sections["models"]["text"], "final": cfg}
    return Ablation(sections, controls, curve)


#: the reference report's accuracies: single runs on 500 random rows each, from its own table (not rerun here)
REFERENCE_REPORT = {"text": 0.748, "image": 0.602, "concat": 0.824, "reference_gate": 0.646}


def reference_comparison(cv, models=SINGLE_MODELS):
    """The reference report's accuracy beside ours (CV mean and std over folds) for the baseline and ``models``."""
    import pandas as pd

    from .metrics import fold_stats

    mean, std = fold_stats(cv, ["accuracy"])
    ours = pd.DataFrame({"ours: CV accuracy mean": mean.accuracy, "ours: std": std.accuracy}).round(3)  # as summarize
    table = pd.DataFrame({"reference report (single split)": REFERENCE_REPORT}).join(ours, how="outer")
    return table.loc[["always_positive", *models]]


def also_tried(cv, tables: dict, kept: tuple[str, ...] = (), confirmed: dict[str, bool] | None = None,
               live: tuple[str, ...] = ()):
    """The "also tried" table of notebook 5: every row of the committed per-fold ``tables`` (``{the commit that made
    it: table}``, each table with a ``control`` column) but the ``kept`` rows, beside its control
    (:func:`paired_table`), with the stage it reached under the adoption rule (:func:`passes` on its folds, then
    ``confirmed``: ``{row: whether its check over seeds passed}``) and what remakes it: HEAD for the ``live`` rows
    (``python -m lab5.experiments.rows``), else the commit whose code made it. A control missing from the tables is
    taken from the live per-fold table ``cv``, rounded as the tables store them, so that a fold tied at 4 decimals is
    not won."""
    import pandas as pd

    tables = {commit: t for commit, t in tables.items() if t is not None}
    made = {r: commit for commit, t in tables.items() for r in t.model}
    pairs = {r: (r, c) for t in tables.values() for r, c in t.dropna(subset=["control"]).groupby("model", sort=False)
             .control.first().items() if r not in kept}
    pool = pd.concat([cv.round(4), *tables.values()]).drop_duplicates(["model", "fold"])
    tried = paired_table(pool, pairs)
    tried.insert(0, "control", [c for _, c in pairs.values()])
    confirmed = confirmed or {}
    tried["stage"] = ["screened out" if not passes(fold_differences(pool, r, c)) else
                      "passed the screen, screen only" if r not in confirmed else
                      f"passed the screen, {'confirmed' if confirmed[r] else 'not confirmed'} over seeds"
                      for r, (_, c) in pairs.items()]
    tried["remade by"] = ["HEAD" if r in live else f"commit {made[r]}" for r in pairs]
    return tried


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
