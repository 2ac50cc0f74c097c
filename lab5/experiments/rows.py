"""Ideas measured against notebook 5's rows and not adopted: their rows, their controls, and the command that
cross-validates them into a per-fold table like the one notebook 5 reads (``figures/05_experiments.csv``)::

    python -m lab5.experiments.rows     (146 s on 2 cores with notebook 5's rows in the CV cache)

Each row changes one thing of its control, and each control is cross-validated too, so that the table binds to the
notebook's live rows fold by fold. The rows here are the ones the core's options still make: recipe variants
(widths, epochs), the searched values, the lexicon on late fusion, the final model with concat beside or in place of
cross-attention, and OOF-tuned decision offsets (:mod:`lab5.experiments.offsets`) on some of them. The committed table also holds rows of ideas whose code was deleted after measuring them (early
stopping, class weights, tweet cleaning, the fine-tuned top layer, temperature scaling, stacking, and more); its
``.json`` names the commit whose ``python -m lab5 cv --rows experiments`` made
every row.
"""
from __future__ import annotations

import sys

import pandas as pd

from ..ablation import EXPERIMENTS_FILE, MEAN, single_model_base, story
from ..config import Config
from ..evaluation import cross_validate, cv_runs
from ..metrics import METRIC_COLUMNS, summarize
from ..tuning import chosen, read_table, table_path, trials_file
from . import parser, run
from .offsets import offsets_folds

#: the committed searches whose chosen values get a row (``python -m lab5 tune --model ...``, one table each)
SEARCHES = ("gated+late", "cross_attention")
#: the final ensemble with its heads changed: concat in cross-attention's place or beside it
MEMBER_SWAPS = {"concat in place of cross-attention": "concat+gated+late",
                "concat as a fourth head": "concat+cross_attention+gated+late"}
#: the final model with concat as a fourth head, by the plain mean: better on 4 of 5 folds on one seed
FOURTH_HEAD = "plain mean, concat as a fourth head"
#: the final model decided by per-class offsets tuned on its OOF rows (notebook 6's nested CV rejects them)
OFFSETS = "mean + OOF-tuned offsets"
#: the rows decided by offsets cross-fitted over the folds (:func:`lab5.experiments.offsets.offsets_folds`), each
#: made from the CV run of the plain row named
OFFSET_ROWS = {"late + OOF-tuned neutral offsets": "late", OFFSETS: MEAN,
               **{f"offsets, {name}": f"plain mean, {name}" for name in MEMBER_SWAPS}}


def tuned_row(model: str) -> str:
    """The row of ``model`` at the values its search chose: ``gated+late on MiniLM, tuned values``,
    ``cross_attention, tuned values``."""
    return f"{model} on MiniLM, tuned values" if "+" in model else f"{model}, tuned values"


def experiment_rows(cfg: Config, tuned: dict[str, dict] | None = None) -> tuple[dict[str, Config], dict[str, str]]:
    """The rows around the final model ``cfg`` that notebook 5 reads from the committed table, each with the control
    it changes one thing of (``tuned``: ``{searched model: values its search chose}``, :mod:`lab5.tuning`). The
    controls that are notebook 5's own rows come first, so that the table carries them. The rows of
    :data:`OFFSET_ROWS` have a control but no config: they are made from their plain row's run."""
    minilm = single_model_base(cfg)
    late = minilm.replace(model="late")
    changed = {"concat, width 128": ("concat", minilm.replace(model="concat", hidden=128)),
               "cross_attention, 2 epochs": ("cross_attention", minilm.replace(model="cross_attention", epochs=2)),
               "cross_attention, width 256": ("cross_attention", minilm.replace(model="cross_attention", attention_hidden=256)),
               **{f"{m}, {e} epochs": (m, minilm.replace(model=m, epochs=e)) for m in ("gated", "late") for e in (2, 4)},
               "late − VADER lexicon": ("late", late.replace(text_features="tokens"))}
    rows = {name: c for name, (_, c) in changed.items()}
    controls = {name: control for name, (control, _) in changed.items()}
    for model, values in (tuned or {}).items():
        control = f"{model} on MiniLM" if "+" in model else model
        rows.setdefault(control, minilm.replace(model=model))
        rows[tuned_row(model)] = minilm.replace(model=model, **values)
        controls[tuned_row(model)] = control
    controls["late + OOF-tuned neutral offsets"] = "late"
    for name, model in MEMBER_SWAPS.items():
        controls[f"offsets, {name}"] = OFFSETS
        rows[f"plain mean, {name}"] = cfg.replace(model=model)
        controls[f"plain mean, {name}"] = MEAN
    live = story(cfg).rows()
    bases = [*controls.values(), *OFFSET_ROWS.values()]
    needed = {c: live[c] for c in dict.fromkeys(bases) if c not in rows and c not in OFFSET_ROWS}
    return {**needed, **rows}, controls


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m lab5.experiments.rows", __doc__)

    def build(args, cfg: Config, ds) -> tuple[pd.DataFrame, str]:
        searches = {m: read_table(table_path(cfg, ds, trials_file(m))) for m in SEARCHES}
        rows, controls = experiment_rows(cfg, {m: chosen(t) for m, t in searches.items() if t is not None})
        runs = cv_runs(ds, rows)
        offsets = [offsets_folds(ds, rows[base], runs[base]).assign(model=name) for name, base in OFFSET_ROWS.items()]
        cv = pd.concat([cross_validate(ds, rows, runs=runs), *offsets], ignore_index=True)[["model", "fold", *METRIC_COLUMNS]]
        cv.insert(1, "control", cv.model.map(controls).fillna(""))
        return cv.round(4), summarize(cv, ["accuracy", "macro_f1", "f1_neutral"]).to_string()

    return run(p, argv, f"per-fold table (CSV; default <output root>/runs/experiments/{EXPERIMENTS_FILE}, not figures/, "
                        "whose committed table also holds rows of deleted code; notebook 5 reads <output root>/figures/)",
               lambda root, args: root.run("experiments") / EXPERIMENTS_FILE, build)


if __name__ == "__main__":
    sys.exit(main())
