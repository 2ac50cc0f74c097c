"""lab5.ablation: notebook 5's rows, their controls and the learning curve, as one list."""
from __future__ import annotations

import pandas as pd
import pytest

from lab5.ablation import FINAL, HEADS, MEAN, OFFSETS, SINGLE_MODELS, TUNED, TUNED_HEADS, ablation, member_swaps
from lab5.config import MODEL_NAMES, Config


def test_every_row_has_a_control_that_is_a_row_and_changes_one_thing(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)  # the defaults: the final model
    plan = ablation(cfg)
    rows = plan.rows()
    assert set(plan.controls) == set(rows) - {"text"}  # every row but the text model, which the models are against
    assert set(plan.controls.values()) <= set(rows)
    fields = {"hidden", "early_stopping", "epochs", "text_features", "model", "balance", "text_clean", "text_top", "combine",
              "text_encoder", "offsets_for"}
    for row, control in plan.controls.items():
        a, b = rows[row].to_dict(), rows[control].to_dict()
        changed = {k for k in a if a[k] != b[k]}
        assert changed and changed <= fields, (row, control, changed)


def test_the_sections_hold_every_model_the_final_model_and_its_heads(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)  # the defaults: the final model
    plan = ablation(cfg)
    assert list(plan.sections["models"]) == list(SINGLE_MODELS)
    assert set(MODEL_NAMES) == set(SINGLE_MODELS)
    assert plan.rows()[FINAL] == cfg and plan.curve["final"] == cfg
    assert all(f"{h} on mpnet" in plan.sections["encoders"] for h in HEADS)
    assert all(c.text_encoder == "minilm" for c in plan.sections["models"].values())


def test_the_reference_comparison_puts_the_reports_numbers_beside_our_fold_means():
    import pandas as pd

    from lab5.ablation import REFERENCE_REPORT, reference_comparison

    cv = pd.DataFrame({"model": ["always_positive"] * 2 + ["text"] * 2 + ["concat"] * 2, "fold": [0, 1] * 3,
                       "accuracy": [0.6, 0.6, 0.7, 0.72, 0.73, 0.75]})
    table = reference_comparison(cv, ["text", "concat"])
    assert list(table.index) == ["always_positive", "text", "concat"]
    assert table.loc["concat", "reference report (single split)"] == REFERENCE_REPORT["concat"]
    assert table.loc["text", "ours: CV accuracy mean"] == 0.71 and pd.isna(table.loc["always_positive", "reference report (single split)"])


def test_tuned_values_add_a_section_of_the_searched_heads_against_their_defaults(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    assert "tuning" not in ablation(cfg).sections
    plan = ablation(cfg, tuned={TUNED_HEADS: {"lr": 3e-3, "hidden": 512, "epochs": 3},
                                "cross_attention": {"attention_hidden": 256, "dropout": 0.1}})
    rows = plan.sections["tuning"]
    assert list(rows) == [f"{TUNED_HEADS} on MiniLM", TUNED, "cross_attention, tuned values"]
    assert plan.controls[TUNED] == f"{TUNED_HEADS} on MiniLM"
    assert plan.controls["cross_attention, tuned values"] == "cross_attention"  # its row among the models
    assert rows["cross_attention, tuned values"] == plan.rows()["cross_attention"].replace(attention_hidden=256, dropout=0.1)
    control, tuned = rows[f"{TUNED_HEADS} on MiniLM"], rows[TUNED]
    assert control.model == TUNED_HEADS and control.text_encoder == "minilm" and control.combine == "mean"
    assert tuned == control.replace(lr=3e-3, hidden=512)  # only the tuned values differ (epochs 3 is the default)
    assert control.fold_seed == cfg.fold_seed  # scored on the report's folds, not the search's


def test_member_swaps_change_only_the_final_models_heads_against_its_decision_and_the_plain_mean(tmp_path):
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)  # the defaults: the final model
    plan = ablation(cfg)
    rows, controls = member_swaps(cfg)
    assert set(controls) == set(rows) and set(controls.values()) == {OFFSETS, MEAN} and FINAL == MEAN
    assert {c.model for c in rows.values()} == {"concat+gated+late", "concat+cross_attention+gated+late"}
    for row, control in controls.items():
        a, b = rows[row].to_dict(), plan.rows()[control].to_dict()
        assert {k for k in a if a[k] != b[k]} == {"model"}, row  # the same encoders, recipe and decision rule
    assert not set(rows) & set(plan.rows())  # not rows of the pooled ablation


def test_the_reference_comparison_rounds_our_means_as_the_summary_table_does():
    import pandas as pd

    from lab5.ablation import reference_comparison
    from lab5.metrics import summarize

    folds = [0.73125, 0.7375, 0.72625, 0.7225, 0.7]  # gated fusion's five folds: mean 0.7235, a tie at the third digit
    cv = pd.DataFrame({"model": ["always_positive"] * 5 + ["gated"] * 5, "fold": [*range(5)] * 2,
                       "accuracy": [0.6] * 5 + folds})
    table = reference_comparison(cv, ["gated"])
    shown = summarize(cv, ["accuracy"]).loc["gated", "accuracy"].split(" ± ")
    assert (table.loc["gated", "ours: CV accuracy mean"], table.loc["gated", "ours: std"]) == tuple(map(float, shown))


def test_the_width_row_changes_only_cross_attentions_width(tmp_path):
    from lab5.ablation import width_rows

    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    plan = ablation(cfg)
    for make, field in ((width_rows, "attention_hidden"),):
        rows, controls = make(cfg)
        assert set(controls) == set(rows) and not set(rows) & set(plan.rows())
        for row, control in controls.items():
            a, b = rows[row].to_dict(), plan.rows()[control].to_dict()
            assert {k for k in a if a[k] != b[k]} == {field}, row


def test_the_offsets_rows_are_the_final_model_decided_by_offsets_for_either_objective(tmp_path):
    from lab5.ablation import OFFSETS_F1

    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    plan = ablation(cfg)
    final, both, f1 = plan.rows()[FINAL], plan.rows()[OFFSETS], plan.rows()[OFFSETS_F1]
    assert final == cfg and cfg.combine == "mean"  # the final model decides by the plain mean
    assert plan.controls[OFFSETS] == plan.controls[OFFSETS_F1] == MEAN
    assert both == final.replace(combine="mean+offsets", offsets_for="accuracy+macro_f1")
    assert f1 == final.replace(combine="mean+offsets", offsets_for="macro_f1")


def test_finetuned_rows_put_the_fine_tuned_member_beside_late_fusion_and_into_the_final_model(tmp_path, monkeypatch):
    """The rows of ``cv --rows finetuned``: the CVs are stood in for (each run's OOF probabilities random), so what is
    checked is which configs are cross-validated and how the final model's rows are made from their members."""
    import numpy as np
    import pandas as pd

    import lab5.evaluation as E
    from lab5.ablation import FINETUNED, MINILM_LATE, TOP_LAYER, finetuned_rows
    from lab5.evaluation import CVRun, folds
    from lab5.metrics import METRIC_COLUMNS

    y = np.array([0, 1, 2] * 10)
    ds = type("DS", (), {"train": pd.DataFrame({"label": y})})()
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False, folds=3)
    members = ["cross_attention@minilm", "gated@minilm", MINILM_LATE, "cross_attention@mpnet", "gated@mpnet", "late@mpnet"]
    rng, seen, got = np.random.default_rng(0), {}, {}

    def fake_cv_runs(d, configs):
        seen.update(configs)
        for name, c in configs.items():
            parts = {m: rng.dirichlet(np.ones(3), len(y)) for m in (members if "+" in c.model else [c.model])}
            got[name] = E._combined_run(d, c, {m: CVRun(pd.DataFrame(), p, {}, {m: [3] * 3}) for m, p in parts.items()})
        return dict(got)

    monkeypatch.setattr(E, "cv_runs", fake_cv_runs)
    cv, controls = finetuned_rows(ds, cfg)
    plan = ablation(cfg)
    assert {n: c.text_top for n, c in seen.items()} == {"late": 0, TOP_LAYER: 1, FINETUNED: 6, MEAN: 0, OFFSETS: 0}
    for name in ("late", TOP_LAYER, MEAN, OFFSETS):  # the controls are the pooled ablation's own rows
        assert seen[name] == plan.rows()[name]
    assert seen[FINETUNED] == plan.rows()["late"].replace(text_top=6)
    assert controls[TOP_LAYER] == controls[FINETUNED] == "late"
    ensemble_rows = [r for r in controls if r.startswith(("offsets", "plain mean"))]
    assert len(ensemble_rows) == 4 and {controls[r] for r in ensemble_rows} == {OFFSETS, MEAN}
    assert list(cv.columns) == ["model", "fold", *METRIC_COLUMNS]
    assert cv.groupby("model", sort=False).fold.count().to_dict() == {r: 3 for r in [*seen, *ensemble_rows]}
    # by the plain mean: the five other members and the fine-tuned one in the frozen member's place, or all seven
    mean_members, tuned = got[MEAN].member_probs, got[FINETUNED].probs
    in_place = np.mean([p for m, p in mean_members.items() if m != MINILM_LATE] + [tuned], axis=0)
    seventh = np.mean([*mean_members.values(), tuned], axis=0)
    for row, probs in (("plain mean, fine-tuned MiniLM late in place of its MiniLM late member", in_place),
                       ("plain mean, fine-tuned MiniLM late as a seventh member", seventh)):
        expected = [(probs[te].argmax(1) == y[te]).mean() for _, te in folds(y, 3, cfg.fold_seed)]
        assert cv[cv.model == row].accuracy.tolist() == pytest.approx(expected)


def test_finetuned_rows_refuse_a_final_model_without_a_minilm_late_member_before_any_cv(tmp_path, monkeypatch):
    import lab5.evaluation as E
    from lab5.ablation import finetuned_rows
    from lab5.errors import ConfigError

    monkeypatch.setattr(E, "cv_runs", lambda *a: pytest.fail("a CV ran before the refusal"))
    cfg = Config(data=tmp_path, cache=tmp_path, progress=False, model="cross_attention+gated")
    with pytest.raises(ConfigError, match="in place of the final model's 'late@minilm'"):
        finetuned_rows(None, cfg)


def test_the_story_is_the_models_the_equal_input_row_mpnet_the_ensembles_and_the_final_model_less_each_input(tmp_path):
    from lab5.ablation import NO_LEXICON, WITHOUT, story

    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    plan, full = story(cfg), ablation(cfg)
    assert list(plan.sections) == ["models", "attention", "encoders", "ensembles", "without"]
    assert plan.rows()[FINAL] == cfg and NO_LEXICON in plan.rows() and list(plan.curve) == ["text", "final"]
    for row, c in plan.rows().items():  # every row the story shares with the ablation is the same configuration
        assert row in WITHOUT or c == full.rows()[row], row
    for row, change in WITHOUT.items():  # the final model less one input, read against the final model
        assert plan.controls[row] == FINAL
        a, b = plan.rows()[row].to_dict(), cfg.to_dict()
        assert {k for k in a if a[k] != b[k]} == set(change), row
    assert all(control in plan.rows() for control in plan.controls.values())


def test_experiments_are_every_other_row_with_its_control_and_no_story_row_but_controls(tmp_path):
    from lab5.ablation import experiments, story

    cfg = Config(data=tmp_path, cache=tmp_path, progress=False)
    rows, controls = experiments(cfg)
    kept = story(cfg).rows()
    assert set(controls) <= set(rows) and set(controls.values()) <= set(rows)
    assert not (set(rows) - set(controls.values())) & set(kept)  # a story row is here only as a control
    assert set(ablation(cfg).rows()) <= set(rows) | set(kept)  # nothing of the ablation is lost
    assert {"plain mean, concat in place of cross-attention", "cross_attention, width 256"} <= set(controls)


def test_also_tried_reads_each_row_beside_its_control_and_takes_missing_controls_from_the_live_rows():
    from lab5.ablation import also_tried

    live = pd.DataFrame({"model": ["late"] * 3, "fold": [0, 1, 2], "accuracy": [0.70001, 0.7, 0.7],
                         "macro_f1": [0.5, 0.5, 0.5]})
    table = pd.DataFrame({"model": ["late + x"] * 3 + ["late"] * 3, "control": ["late"] * 3 + [None] * 3,
                          "fold": [0, 1, 2] * 2, "accuracy": [0.7, 0.71, 0.72, 0.7, 0.7, 0.7],
                          "macro_f1": [0.5, 0.6, 0.4, 0.5, 0.5, 0.5]})
    tried = also_tried(live, table, kept=("late",))
    assert list(tried.index) == ["late + x"] and tried.loc["late + x", "control"] == "late"
    assert tried.loc["late + x", "accuracy: folds won"] == "2/3"  # fold 0 ties once the live row is rounded
    assert tried.loc["late + x", "Δ accuracy (points)"] == pytest.approx(1.0)
    assert also_tried(live, table, kept=("late + x", "late")).empty
