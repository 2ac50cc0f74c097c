"""The README quotes the committed tables: every number of its results table and of its rule table is read from the
CSV it names."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lab5.ablation import FINAL, NO_LEXICON, fold_differences, passes

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
#: the README's result rows -> the model names of figures/05_cv_summary.csv
RESULTS = {"always positive": "always_positive", "text only": "text", "image only": "image", "concat fusion": "concat",
           "cross-attention fusion": "cross_attention",
           "final model": FINAL}


def _table(heading: str) -> dict[str, list[str]]:
    """The first markdown table under ``## heading``: its first cell -> the other cells (bold marks dropped)."""
    section = (ROOT / "README.md").read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip().strip("*"): [c.strip().strip("*") for c in cells[1:]] for cells in rows[1:]}


def _numbers(cell: str) -> list[float]:
    return [float(x.replace("−", "-")) for x in re.findall(r"[+−-]?\d+\.\d+|\d+(?=/)|(?<=/)\d+", cell)]


def test_the_results_table_quotes_notebook_5s_cv_summary():
    table = _table("Results")
    summary = pd.read_csv(FIGURES / "05_cv_summary.csv", index_col=0)
    for prefix, model in RESULTS.items():
        (label,) = [k for k in table if k.startswith(prefix)]
        for quoted, column in zip(table[label], ("accuracy", "macro_f1")):
            committed = [float(x) for x in summary.loc[model, column].split(" ± ")]
            shown = _numbers(quoted)
            assert shown == pytest.approx(committed[:len(shown)], abs=5e-4), (label, column)


def test_the_headline_is_the_nested_cv_of_the_submitted_procedure_with_both_spreads():
    from lab5.experiments.nested import NESTED_FILE, summary

    table = _table("Results")
    (label,) = [k for k in table if k.startswith("submitted procedure")]
    nested = summary(pd.read_csv(FIGURES / NESTED_FILE)).loc[("bagged", "mean")]  # what predict does
    for quoted, column in zip(table[label], ("accuracy", "macro_f1")):
        assert _numbers(quoted) == pytest.approx([nested[(column, "mean")], nested[(column, "std over folds")]], abs=5e-4)
    intro = " ".join((ROOT / "README.md").read_text().split("## Results")[0].split())
    acc, f1 = (nested[(c, "mean")] for c in ("accuracy", "macro_f1"))
    assert f"**{acc:.3f} accuracy and {f1:.3f} macro-F1**" in intro
    for column in ("accuracy", "macro_f1"):
        assert f"± {nested[(column, 'std over folds')]:.3f}" in intro, column
        assert f"{nested[(column, 'std over seeds')]:.3f}" in intro.split("seeds' means")[1], column


def _over_seeds(table: pd.DataFrame, row: str, control: str, seeds=None) -> pd.Series:
    """``row`` minus ``control`` in accuracy on every (seed, fold seed, fold) of a per-seed table."""
    keys = [k for k in ("seed", "fold_seed", "fold") if k in table]
    if seeds is not None:
        table = table[table.seed.isin(seeds)]
    both = table[table.model == row].merge(table[table.model == control], on=keys, suffixes=("", "_c"))
    return both.accuracy - both.accuracy_c


def _sources() -> dict[str, tuple]:
    """Each rule-table row (by the start of its label) -> its per-fold differences on the screen (seed 0) and over
    seeds (None where the README shows none)."""
    cv = pd.read_csv(FIGURES / "05_cv_folds.csv")
    experiments = pd.concat([cv.round(4), pd.read_csv(FIGURES / "05_experiments.csv")]).drop_duplicates(["model", "fold"])
    confirm = pd.read_csv(FIGURES / "05_seed_confirmations.csv")
    words = pd.read_csv(FIGURES / "05_image_words.csv")
    candidates = pd.read_csv(FIGURES / "05_seed_candidates.csv")
    rescore = pd.read_csv(FIGURES / "05_tuning_rescore.csv")
    rescore = pd.concat([cv, rescore[rescore.model == "cross_attention+gated+late"].assign(model="searched")])

    def live(row, control):  # seed 0 is the screen (notebook 5's live rows), seeds 0-2 the confirmation
        return _over_seeds(confirm, row, control, [0]), _over_seeds(confirm, row, control)

    def word(row):
        return _over_seeds(words, row, "final model", [0]), _over_seeds(words, row, "final model")

    return {"the image": live(FINAL, "final − image (text heads only)"),
            "averaging the three heads": live(FINAL, "final − averaging (late heads only)"),
            "mpnet's heads": live(FINAL, "ensemble on MiniLM"),
            "VADER scores": live(FINAL, "final − VADER lexicon"),
            "cross-attention instead of concat": live("cross_attention", NO_LEXICON),
            "the words in the image appended": word("appended"),
            "3 other uses of the words": [word("appended, segmented"), word("beside"), word("appended, 128 tokens")],
            "concat as a fourth head": (fold_differences(experiments, "plain mean, concat as a fourth head", FINAL),
                                        _over_seeds(candidates[candidates.fold_seed == 0], "plain mean, concat as a fourth head", FINAL)),
            "gated, 2 epochs": live("gated, 2 epochs", "gated"),
            "gated + late, searched values": live("gated+late on MiniLM, tuned values", "gated+late on MiniLM"),
            "the final model's searched values": (fold_differences(rescore, "searched", FINAL), None)}


def _quoted(d: pd.Series) -> list[float]:
    return [round(100 * d.mean(), 2), int((d > 0).sum()), len(d)]


def _span(quoted: list[list[float]]) -> list[float]:
    """The README's "+a to +b, k/n to m/n" of several rows' quoted numbers."""
    return [min(q[0] for q in quoted), max(q[0] for q in quoted), min(q[1] for q in quoted), quoted[0][2],
            max(q[1] for q in quoted), quoted[0][2]]


def test_every_number_of_the_rule_table_is_read_from_its_table_and_every_stage_follows_the_rule():
    table = _table("The rule, and what it decided")
    for prefix, source in _sources().items():
        (label,) = [k for k in table if k.startswith(prefix)]
        _, screened, confirmed, stage = table[label]
        rows = source if isinstance(source, list) else [source]
        screens, seeds = [_quoted(s) for s, _ in rows], [None if c is None else _quoted(c) for _, c in rows]
        assert _numbers(screened) == pytest.approx(screens[0] if len(rows) == 1 else _span(screens), abs=0.011), label
        if seeds[0] is None:
            assert confirmed == "—", label
        else:
            assert _numbers(confirmed) == pytest.approx(seeds[0] if len(rows) == 1 else _span(seeds), abs=0.011), label
        for screen, over_seeds in rows:
            if not passes(screen):
                assert stage.startswith("screened out"), label
            elif over_seeds is not None:
                assert stage.startswith("adopted" if passes(over_seeds) else "not confirmed"), label
    assert len(table) == len(_sources()) + 1  # and the row of the screen-only ideas, whose code is gone


def test_the_screen_only_row_spans_the_rows_whose_code_is_gone_and_that_passed_the_screen():
    from lab5 import Config
    from lab5.ablation import story
    from lab5.experiments.rows import SEARCHES, experiment_rows
    from lab5.tuning import chosen, read_table, trials_file

    cfg = Config(progress=False)
    live = {*experiment_rows(cfg, {m: chosen(read_table(FIGURES / trials_file(m))) for m in SEARCHES})[0],
            *story(cfg).rows()}
    cv = pd.read_csv(FIGURES / "05_cv_folds.csv")
    passed = []
    for name in ("05_experiments.csv", "05_finetuned_minilm.csv"):
        t = pd.read_csv(FIGURES / name)
        pool = pd.concat([cv.round(4), t]).drop_duplicates(["model", "fold"])
        for row, control in t.dropna(subset=["control"]).groupby("model", sort=False).control.first().items():
            d = fold_differences(pool, row, control)
            if row not in live and passes(d):
                passed.append(_quoted(d))
    (label,) = [k for k in _table("The rule, and what it decided") if k.startswith(f"{len(passed)} ideas measured at earlier commits")]
    _, screened, confirmed, stage = _table("The rule, and what it decided")[label]
    low, high = min(p[0] for p in passed), max(p[0] for p in passed)
    assert _numbers(screened) == pytest.approx([low, high, min(p[1] for p in passed), 5, max(p[1] for p in passed), 5])  # +a to +b, k/5 to m/5
    assert confirmed == "—" and stage.startswith("screen only")
