"""lab5.tuning: the seeded draw of trials, their CV on the search folds, the ranking and the `tune` command."""
from __future__ import annotations

import pandas as pd
import pytest
from synthetic import make_features, small_config

import lab5.evaluation as E
from lab5.cli import main
from lab5.data import load_dataset
from lab5.errors import ConfigError
from lab5.tuning import SEARCH_FOLD_SEED, chosen, read_table, search, space, trial_configs, trials_file


def test_trial_zero_is_the_config_and_the_others_are_distinct_seeded_points_of_the_space(tmp_path):
    cfg = small_config(tmp_path, model="gated+late", hidden=256, lr=1e-3, dropout=0.3, weight_decay=0.01, epochs=3,
                       batch_size=64)
    SPACE = space(cfg.model)
    trials = trial_configs(cfg, 12, seed=0)
    values = [tuple(getattr(c, k) for k in SPACE) for c in trials.values()]
    assert list(trials) == list(range(12)) and values[0] == tuple(getattr(cfg, k) for k in SPACE)
    assert len(set(values)) == 12  # no point twice, the control's own values never drawn again
    assert all(getattr(c, k) in SPACE[k] for c in trials.values() for k in SPACE)
    assert all(c.fold_seed == SEARCH_FOLD_SEED != cfg.fold_seed for c in trials.values())
    assert all(c.replace(**{k: getattr(cfg, k) for k in SPACE}, fold_seed=cfg.fold_seed) == cfg for c in trials.values())
    assert [tuple(getattr(c, k) for k in SPACE) for c in trial_configs(cfg, 12, seed=0).values()] == values
    assert [tuple(getattr(c, k) for k in SPACE) for c in trial_configs(cfg, 12, seed=1).values()] != values


def test_each_model_searches_the_width_its_heads_read():
    assert "hidden" in space("gated+late") and "attention_hidden" not in space("gated+late")
    assert "attention_hidden" in space("cross_attention") and "hidden" not in space("cross_attention")
    assert {"hidden", "attention_hidden"} <= set(space("cross_attention+late"))
    assert all(set(space(m)) >= {"lr", "dropout", "weight_decay", "epochs", "batch_size"} for m in ("late", "cross_attention"))
    assert trials_file("gated+late") == "05_tuning_trials_gated_late.csv"


def test_a_cross_attention_search_draws_its_attention_width(tmp_path):
    cfg = small_config(tmp_path, model="cross_attention", attention_hidden=128, hidden=256, lr=1e-3,
                       dropout=0.3, weight_decay=0.01, epochs=3, batch_size=64)
    trials = trial_configs(cfg, 8, seed=0)
    assert {c.hidden for c in trials.values()} == {256} and len({c.attention_hidden for c in trials.values()}) > 1
    assert all(c.attention_hidden in space("cross_attention")["attention_hidden"] for c in trials.values())


@pytest.mark.parametrize("trials", [0, 10_000])
def test_a_trial_count_outside_the_space_is_refused(tmp_path, trials):
    with pytest.raises(ConfigError, match="--trials must be between 1 and"):
        trial_configs(small_config(tmp_path), trials)


def test_the_search_scores_each_trial_on_the_search_folds_and_ranks_by_accuracy(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    monkeypatch.setattr(E, "load_features", lambda d, c: feats)
    cfg = small_config(tmp_path, model="late", epochs=2)
    table = search(ds, cfg, trials=3)
    assert table.trial.tolist() == [0, 1, 2] and sorted(table["rank"]) == [1, 2, 3]
    runs = E.cv_runs(ds, trial_configs(cfg, 3))  # the same trials, read back from the CV cache
    assert table.accuracy.tolist() == pytest.approx([r.folds.accuracy.mean() for r in runs.values()])
    best = table.sort_values(["accuracy", "macro_f1"], ascending=False).iloc[0]
    assert table.loc[table["rank"] == 1, "trial"].item() == best.trial
    assert chosen(table) == {k: best[k] for k in space("late")}
    assert isinstance(chosen(table)["hidden"], int) and isinstance(chosen(table)["lr"], float)
    assert (table.fold_seed == SEARCH_FOLD_SEED).all() and (table.model == "late").all()


def test_tune_writes_the_trials_table_and_refuses_a_bad_trial_count_before_any_work(dataset_factory, tmp_path, monkeypatch, capsys):
    root = dataset_factory(n_train=45, n_test=2)
    ds = load_dataset(root)
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    monkeypatch.setattr(E, "load_features", lambda d, c: feats)
    opts = ["--data", str(root), "--cache", str(tmp_path / "cache"), "--no-progress", "--model", "late", "--folds", "3",
            "--text-encoder", "minilm", "--jobs", "1", "--device", "cpu"]
    out = tmp_path / "t" / "trials.csv"
    assert main(["tune", *opts, "--trials", "0", "--out", str(out)]) == 2
    assert "--trials must be between 1" in capsys.readouterr().err and not out.exists()
    assert main(["tune", *opts, "--search-seed", "-1", "--out", str(out)]) == 2
    assert "--search-seed must lie in" in capsys.readouterr().err and not out.exists()
    assert main(["tune", *opts, "--trials", "2", "--out", str(out)]) == 0
    table = read_table(out)
    assert isinstance(table, pd.DataFrame) and len(table) == 2 and "chosen:" in capsys.readouterr().out
    assert read_table(tmp_path / "missing.csv") is None


def test_a_table_of_another_dataset_is_read_from_its_own_output_root(dataset_factory, tmp_path):
    from lab5.outputs import output_root
    from lab5.tuning import table_path

    TRIALS_FILE = trials_file("late")
    ds = load_dataset(dataset_factory(n_train=12, n_test=2))
    cfg = small_config(tmp_path, out_dir=tmp_path / "out")
    assert table_path(cfg, ds, TRIALS_FILE) == output_root(cfg, ds).figures / TRIALS_FILE == tmp_path / "out" / "figures" / TRIALS_FILE
    (output_root(cfg, ds).figures / TRIALS_FILE).parent.mkdir(parents=True)
    (output_root(cfg, ds).figures / TRIALS_FILE).write_text("trial\n0\n")  # another dataset's own table is read
    assert read_table(table_path(cfg, ds, TRIALS_FILE)).trial.tolist() == [0]


def test_the_course_datas_table_falls_back_to_the_projects_committed_one(dataset_factory, tmp_path, monkeypatch):
    import lab5.outputs
    from lab5.tuning import table_path

    TRIALS_FILE = trials_file("late")
    ds = load_dataset(dataset_factory(n_train=12, n_test=2))
    monkeypatch.setattr(lab5.outputs, "is_course_data", lambda d: True)
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks")
    cfg = small_config(tmp_path, out_dir=tmp_path / "out")  # a temporary output root, as under pytest
    assert table_path(cfg, ds, TRIALS_FILE) == tmp_path / "out" / "figures" / TRIALS_FILE  # nothing committed: the output root
    (project / "figures").mkdir()
    (project / "figures" / TRIALS_FILE).write_text("trial\n0\n")
    assert table_path(cfg, ds, TRIALS_FILE) == project.resolve() / "figures" / TRIALS_FILE
    (tmp_path / "out" / "figures").mkdir(parents=True)
    (tmp_path / "out" / "figures" / TRIALS_FILE).write_text("trial\n0\n")
    assert table_path(cfg, ds, TRIALS_FILE) == tmp_path / "out" / "figures" / TRIALS_FILE  # the output root's own table first


def test_the_search_summary_puts_each_searchs_defaults_beside_its_chosen_trial():
    from lab5.tuning import search_summary

    late = pd.DataFrame({"trial": [0, 1, 2], "lr": [1e-3, 3e-3, 3e-4], "dropout": [0.3] * 3, "hidden": [256, 512, 128],
                         "weight_decay": [0.01] * 3, "epochs": [3] * 3, "batch_size": [64] * 3,
                         "accuracy": [0.72, 0.74, 0.70], "rank": [2, 1, 3], "model": ["late"] * 3})
    table = search_summary({"late": late, "gated": None})
    assert list(table.index) == ["late"]  # a search without a table is left out
    row = table.loc["late"]
    assert (row["trials"], row["defaults: accuracy"], row["chosen: accuracy"], row["defaults' rank"]) == (3, 0.72, 0.74, 2)
    assert row["chosen values"] == chosen(late) and row["chosen values"]["lr"] == 3e-3
