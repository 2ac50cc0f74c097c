"""lab5.tuning: the seeded draw of trials, their CV on the search folds, the ranking and the `tune` command."""
from __future__ import annotations

import pandas as pd
import pytest
from synthetic import make_features, small_config

import lab5.evaluation as E
from lab5.cli import main
from lab5.data import load_dataset
from lab5.errors import ConfigError
from lab5.tuning import SEARCH_FOLD_SEED, SPACE, chosen, read_trials, search, trial_configs


def test_trial_zero_is_the_config_and_the_others_are_distinct_seeded_points_of_the_space(tmp_path):
    cfg = small_config(tmp_path, hidden=256, lr=1e-3, dropout=0.3, weight_decay=0.01, epochs=3, batch_size=64)
    trials = trial_configs(cfg, 12, seed=0)
    values = [tuple(getattr(c, k) for k in SPACE) for c in trials.values()]
    assert list(trials) == list(range(12)) and values[0] == tuple(getattr(cfg, k) for k in SPACE)
    assert len(set(values)) == 12  # no point twice, the control's own values never drawn again
    assert all(getattr(c, k) in SPACE[k] for c in trials.values() for k in SPACE)
    assert all(c.fold_seed == SEARCH_FOLD_SEED != cfg.fold_seed and c.combine == "mean" for c in trials.values())
    assert all(c.replace(**{k: getattr(cfg, k) for k in SPACE}, fold_seed=cfg.fold_seed) == cfg for c in trials.values())
    assert [tuple(getattr(c, k) for k in SPACE) for c in trial_configs(cfg, 12, seed=0).values()] == values
    assert [tuple(getattr(c, k) for k in SPACE) for c in trial_configs(cfg, 12, seed=1).values()] != values


@pytest.mark.parametrize("trials", [0, 10_000])
def test_a_trial_count_outside_the_space_is_refused(tmp_path, trials):
    with pytest.raises(ConfigError, match="--trials must be between 1 and"):
        trial_configs(small_config(tmp_path), trials)


def test_the_search_scores_each_trial_on_the_search_folds_and_ranks_by_accuracy(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    monkeypatch.setattr(E, "load_features", lambda d, c: feats)
    cfg = small_config(tmp_path, model="late", epochs=2, early_stopping=False)
    table = search(ds, cfg, trials=3)
    assert table.trial.tolist() == [0, 1, 2] and sorted(table["rank"]) == [1, 2, 3]
    runs = E.cv_runs(ds, trial_configs(cfg, 3))  # the same trials, read back from the CV cache
    assert table.accuracy.tolist() == pytest.approx([r.folds.accuracy.mean() for r in runs.values()])
    best = table.sort_values(["accuracy", "macro_f1"], ascending=False).iloc[0]
    assert table.loc[table["rank"] == 1, "trial"].item() == best.trial
    assert chosen(table) == {k: best[k] for k in SPACE}
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
    assert main(["tune", *opts, "--trials", "2", "--out", str(out)]) == 0
    table = read_trials(out)
    assert isinstance(table, pd.DataFrame) and len(table) == 2 and "chosen:" in capsys.readouterr().out
    assert read_trials(tmp_path / "missing.csv") is None
