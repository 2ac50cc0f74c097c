"""lab5.ablation: notebook 5's rows, their controls and the learning curve, as one list; and the rows of the ideas
measured against them (lab5.experiments.rows, lab5.experiments.seeds)."""
from __future__ import annotations

import pandas as pd
import pytest

from lab5.ablation import FINAL, HEADS, MEAN, NO_LEXICON, SINGLE_MODELS, WITHOUT, story
from lab5.config import MODEL_NAMES, Config


def _changed(a: Config, b: Config) -> set[str]:
    a, b = a.to_dict(), b.to_dict()
    return {k for k in a if a[k] != b[k]}


def test_every_story_row_has_a_control_that_is_a_row_and_changes_one_thing(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)  # the defaults: the final model
    plan = story(cfg)
    rows = plan.rows()
    assert set(plan.controls) == set(rows) - {"text"}  # every row but the text model, which the models are against
    assert set(plan.controls.values()) <= set(rows)
    for row, control in plan.controls.items():
        changed = _changed(rows[row], rows[control])
        assert changed and changed <= {"model", "text_features", "text_encoder"}, (row, control, changed)


def test_the_story_is_the_models_the_equal_input_row_mpnet_the_ensembles_and_the_final_model_less_each_input(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    plan = story(cfg)
    assert list(plan.sections) == ["models", "attention", "encoders", "ensembles", "without"]
    assert list(plan.sections["models"]) == list(SINGLE_MODELS) and set(MODEL_NAMES) == set(SINGLE_MODELS)
    assert all(c.text_encoder == "minilm" for c in plan.sections["models"].values())
    assert all(f"{h} on mpnet" in plan.sections["encoders"] for h in HEADS)
    assert plan.rows()[FINAL] == cfg and plan.curve == {"text": plan.rows()["text"], "final": cfg}
    assert _changed(plan.rows()[NO_LEXICON], plan.rows()["concat"]) == {"text_features"}
    assert plan.rows()[MEAN] == cfg and MEAN == FINAL and plan.controls[MEAN] == "ensemble on MiniLM"
    for row, change in WITHOUT.items():  # the final model less one input, read against the final model
        assert plan.controls[row] == FINAL and _changed(plan.rows()[row], cfg) == set(change), row


def test_the_reference_comparison_puts_the_reports_numbers_beside_our_fold_means():
    from lab5.ablation import REFERENCE_REPORT, reference_comparison

    cv = pd.DataFrame({"model": ["always_positive"] * 2 + ["text"] * 2 + ["concat"] * 2, "fold": [0, 1] * 3,
                       "accuracy": [0.6, 0.6, 0.7, 0.72, 0.73, 0.75]})
    table = reference_comparison(cv, ["text", "concat"])
    assert list(table.index) == ["always_positive", "text", "concat"]
    assert table.loc["concat", "reference report (single split)"] == REFERENCE_REPORT["concat"]
    assert table.loc["text", "ours: CV accuracy mean"] == 0.71 and pd.isna(table.loc["always_positive", "reference report (single split)"])


def test_the_reference_comparison_rounds_our_means_as_the_summary_table_does():
    from lab5.ablation import reference_comparison
    from lab5.metrics import summarize

    folds = [0.73125, 0.7375, 0.72625, 0.7225, 0.7]  # gated fusion's five folds: mean 0.7235, a tie at the third digit
    cv = pd.DataFrame({"model": ["always_positive"] * 5 + ["gated"] * 5, "fold": [*range(5)] * 2,
                       "accuracy": [0.6] * 5 + folds})
    table = reference_comparison(cv, ["gated"])
    shown = summarize(cv, ["accuracy"]).loc["gated", "accuracy"].split(" ± ")
    assert (table.loc["gated", "ours: CV accuracy mean"], table.loc["gated", "ours: std"]) == tuple(map(float, shown))


def test_also_tried_reads_each_row_beside_its_control_and_takes_missing_controls_from_the_live_rows():
    from lab5.ablation import also_tried

    live = pd.DataFrame({"model": ["late"] * 3, "fold": [0, 1, 2], "accuracy": [0.70001, 0.7, 0.7],
                         "macro_f1": [0.5, 0.5, 0.5]})
    table = pd.DataFrame({"model": ["late + x"] * 3 + ["late"] * 3, "control": ["late"] * 3 + [None] * 3,
                          "fold": [0, 1, 2] * 2, "accuracy": [0.7, 0.71, 0.72, 0.7, 0.7, 0.7],
                          "macro_f1": [0.5, 0.6, 0.4, 0.5, 0.5, 0.5]})
    tried = also_tried(live, {"abc1234": table, "def5678": None}, kept=("late",))
    assert list(tried.index) == ["late + x"] and tried.loc["late + x", "control"] == "late"
    assert tried.loc["late + x", "accuracy: folds won"] == "2/3"  # fold 0 ties once the live row is rounded
    assert tried.loc["late + x", "Δ accuracy (points)"] == pytest.approx(1.0)
    assert tried.loc["late + x", "stage"] == "screened out" and tried.loc["late + x", "remade by"] == "commit abc1234"
    assert also_tried(live, {"abc1234": table}, kept=("late + x", "late")).empty


def test_also_tried_gives_each_row_the_stage_it_reached_and_what_remakes_it():
    from lab5.ablation import also_tried

    folds = list(range(5))
    table = pd.DataFrame({"model": ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["late"] * 5, "control": ["late"] * 15 + [None] * 5,
                          "fold": folds * 4, "accuracy": [0.71] * 4 + [0.69] + [0.71] * 5 + [0.72] * 5 + [0.7] * 5,
                          "macro_f1": [0.5] * 20})
    tried = also_tried(table.iloc[:0], {"abc1234": table}, kept=("late",), confirmed={"a": False, "b": True}, live=("b",))
    assert tried.stage.to_dict() == {"a": "passed the screen, not confirmed over seeds",
                                     "b": "passed the screen, confirmed over seeds", "c": "passed the screen, screen only"}
    assert tried["remade by"].to_dict() == {"a": "commit abc1234", "b": "HEAD", "c": "commit abc1234"}


def test_experiment_rows_change_one_thing_of_a_control_that_the_table_carries_or_the_story_has(tmp_path):
    from lab5.experiments.rows import MEMBER_SWAPS, OFFSET_ROWS, OFFSETS, experiment_rows, tuned_row

    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    tuned = {"gated+late": {"lr": 3e-3, "hidden": 512, "epochs": 3}, "cross_attention": {"attention_hidden": 256, "dropout": 0.1}}
    rows, controls = experiment_rows(cfg, tuned)
    live = story(cfg).rows()
    # every control is cross-validated too; an offsets row is made from its plain row's run
    assert set(controls) <= set(rows) | set(OFFSET_ROWS) and set(controls.values()) <= set(rows) | {OFFSETS}
    assert set(OFFSET_ROWS.values()) <= set(rows)
    assert not (set(controls) & set(live))  # no story row is an experiment
    for row, control in controls.items():
        if row in OFFSET_ROWS:
            continue
        changed = _changed(rows[row], rows[control])
        assert changed, row
        if control in live:
            assert rows[control] == live[control]  # the live row itself: the table binds to notebook 5 fold by fold
    assert _changed(rows[tuned_row("gated+late")], rows["gated+late on MiniLM"]) == {"lr", "hidden"}  # epochs 3: default
    assert rows["gated+late on MiniLM"].fold_seed == cfg.fold_seed  # scored on the report's folds, not the search's
    for name in MEMBER_SWAPS:  # the final model's heads changed
        assert _changed(rows[f"plain mean, {name}"], cfg) == {"model"} and controls[f"plain mean, {name}"] == MEAN
        assert controls[f"offsets, {name}"] == OFFSETS and OFFSET_ROWS[f"offsets, {name}"] == f"plain mean, {name}"
