"""The commands of lab5.experiments that write the committed tables notebook 5 reads: each row beside its control,
with the table's provenance; a bad option refused before any work."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lab5.config import Config
from lab5.metrics import METRIC_COLUMNS


def test_the_experiments_command_writes_every_row_beside_its_control_with_its_provenance(
        dataset_factory, tmp_path, monkeypatch, capsys):
    import lab5.experiments.rows as R

    from lab5.evaluation import CVRun

    root = dataset_factory(n_train=45, n_test=2)
    monkeypatch.setenv("LAB5_DATA", str(root))
    seen = {}
    rng = np.random.default_rng(0)

    def fake_cv_runs(ds, configs):  # the runs' shape without the trainings: fold metrics, members' OOF rows
        seen.update(configs)
        folds = pd.DataFrame([{"fold": f, **{c: 0.5 for c in METRIC_COLUMNS}} for f in range(3)])
        return {n: CVRun(folds, None, {"m": rng.dirichlet([1, 1, 1], len(ds.train))}) for n in configs}

    monkeypatch.setattr(R, "cv_runs", fake_cv_runs)
    out = tmp_path / "exp.csv"
    assert R.main(["--out", str(out)]) == 0
    rows, controls = R.experiment_rows(Config(progress=False))
    assert seen == rows  # no committed searches for this dataset: no tuned rows
    assert set(R.OFFSET_ROWS.values()) <= set(rows)  # each offsets row is made from its plain row's run
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns[:3]) == ["model", "control", "fold"]
    assert dict(zip(table.model, table.control)) == {n: controls.get(n, "") for n in [*rows, *R.OFFSET_ROWS]}
    offsets = table[table.model.isin(list(R.OFFSET_ROWS))]
    assert len(offsets) == Config().folds * len(R.OFFSET_ROWS) and offsets.accuracy.between(0, 1).all()
    made = json.loads(out.with_suffix(".json").read_text())
    assert made["command"] == f"python -m lab5.experiments.rows --out {out}" and made["wall_s"] >= 0


def test_the_seed_repeats_command_cross_validates_each_headline_row_at_every_seed_pair(
        dataset_factory, tmp_path, monkeypatch, capsys):
    import lab5.experiments.seeds as S
    from lab5.evaluation import CVRun

    root = dataset_factory(n_train=45, n_test=2)
    monkeypatch.setenv("LAB5_DATA", str(root))
    seen = {}

    def fake_cv_runs(ds, configs):
        seen.update(configs)
        folds = pd.DataFrame([{"fold": f, **{c: 0.5 + 0.01 * f for c in METRIC_COLUMNS}} for f in range(3)])
        return {n: CVRun(folds, None, {}) for n in configs}

    monkeypatch.setattr(S, "cv_runs", fake_cv_runs)
    out = tmp_path / "seeds.csv"
    assert S.main(["--seeds", "1", "--fold-seeds", "2", "--out", str(out)]) == 0
    assert {(n, s, f) for n, s, f in seen} == {(n, s, f) for n in S.REPEATED for s, f in ((0, 0), (1, 0), (0, 2))}
    assert all(c.seed == s and c.fold_seed == f for (_, s, f), c in seen.items())
    table = pd.read_csv(out)
    assert len(table) == 3 * 3 * len(S.REPEATED) and set(table.model) == set(S.REPEATED)
    spread = S.seed_spread(table)
    assert list(spread.index) == list(S.REPEATED) and (spread["training seeds"] == 2).all()
    assert (spread["fold seeds"] == 2).all() and spread["std over them"].eq(0).all()


@pytest.mark.parametrize("module, argv, needle", [("rows", ["--bogus"], "--bogus"), ("seeds", ["--seeds", "1,x"], "1,x"),
                                                  ("seeds", ["--fold-seeds", "-1"], "[0, 2**32)"),
                                                  ("nested", ["--seeds", "-1"], "[0, 2**32)")])
def test_a_bad_option_of_an_experiment_command_exits_2_with_one_line_before_any_work(
        module, argv, needle, dataset_factory, tmp_path, monkeypatch, capsys):
    import importlib

    from test_options import assert_one_error_line

    monkeypatch.setenv("LAB5_DATA", str(dataset_factory(n_train=45, n_test=2)))
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"lab5.experiments.{module}").main(argv)
    assert e.value.code == 2
    assert_one_error_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # LAB5_OUT, LAB5_CACHE: untouched


@pytest.mark.parametrize("module", ["rows", "seeds", "nested"])
def test_an_experiment_command_on_a_dataset_too_small_for_its_cv_exits_2_with_one_line(
        module, dataset_factory, tmp_path, monkeypatch, capsys):
    import importlib

    from test_options import assert_one_error_line

    monkeypatch.setenv("LAB5_DATA", str(dataset_factory(n_train=12, n_test=2)))
    assert importlib.import_module(f"lab5.experiments.{module}").main([]) == 2
    assert_one_error_line(capsys.readouterr().err, "too few for 5-fold cross-validation")
    assert not (tmp_path / "out").exists()


def test_the_core_never_imports_the_experiments():
    import ast
    from pathlib import Path

    import lab5

    package = Path(lab5.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        if "experiments" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):  # from .experiments import x, from . import experiments
                names = [node.module or "", *(a.name for a in node.names if node.module in (None, "lab5"))]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if "experiments" in n.split(".")]
    assert not found


def test_an_experiment_command_on_a_wrong_data_folder_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    import lab5.experiments.rows as R

    monkeypatch.setenv("LAB5_DATA", str(tmp_path / "nowhere"))
    assert R.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_seed_pairs_cross_the_configs_own_pair_once_each():
    from lab5.experiments.seeds import seed_pairs

    assert seed_pairs(0, 0, [0, 1, 2], [0, 1]) == [(0, 0), (1, 0), (2, 0), (0, 1)]
    assert seed_pairs(5, 3, [], []) == [(5, 3)]


def test_repeats_vary_the_training_seed_on_fixed_folds_and_the_folds_with_a_fixed_seed(dataset_factory, tmp_path, monkeypatch):
    import numpy as np
    from synthetic import make_features, small_config

    import lab5.evaluation as E
    from lab5.data import load_dataset
    from lab5.experiments.seeds import repeats, seed_spread

    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label), noise=2.0)  # noisy: seeds change the scores
    monkeypatch.setattr(E, "load_features", lambda d, c: feats)
    cfg = small_config(tmp_path, model="late", epochs=2)
    table = repeats(ds, {"late": cfg}, seeds=[0, 1], fold_seeds=[0, 2])
    assert sorted(set(zip(table.seed, table.fold_seed))) == [(0, 0), (0, 2), (1, 0)] and len(table) == 9
    one = E.cv_runs(ds, {"x": cfg.replace(seed=1)})["x"]  # the repeat is the plain CV of that pair
    assert table[(table.seed == 1)].accuracy.tolist() == pytest.approx(one.folds.accuracy.tolist())
    spread = seed_spread(table).loc["late"]
    means = table.groupby(["seed", "fold_seed"]).accuracy.mean()
    assert spread["CV mean"] == pytest.approx(means[(0, 0)])
    assert spread["training seeds"] == 2 and spread["std over them"] == pytest.approx(np.std([means[(0, 0)], means[(1, 0)]], ddof=1))
    assert spread["fold seeds"] == 2 and spread["mean over those"] == pytest.approx((means[(0, 0)] + means[(0, 2)]) / 2)


def test_a_candidate_is_read_against_the_final_model_fold_by_fold_at_every_seed_pair():
    from lab5.experiments.seeds import paired_over_seeds

    rows = [{"model": m, "seed": s, "fold_seed": f, "fold": k, "accuracy": acc, "macro_f1": 0.5}
            for s, f in ((0, 0), (1, 0)) for k in range(2)
            for m, acc in (("final", 0.70), ("cand", 0.71 if (s, k) != (1, 1) else 0.69))]
    table = paired_over_seeds(pd.DataFrame(rows), "cand", "final")
    assert list(table.index) == ["seed 0, fold seed 0", "seed 1, fold seed 0", "all"]
    assert table.loc["seed 0, fold seed 0", "accuracy: folds won"] == "2/2"
    assert table.loc["seed 1, fold seed 0", "accuracy: folds won"] == "1/2"
    assert table.loc["all", "accuracy: folds won"] == "3/4"
    assert table.loc["all", "Δ accuracy (points)"] == pytest.approx(0.5)
    assert table.loc["all", "Δ macro-F1 (points)"] == 0


def test_the_candidates_command_repeats_the_final_model_and_the_candidate(dataset_factory, tmp_path, monkeypatch, capsys):
    import lab5.experiments.seeds as S
    from lab5.evaluation import CVRun

    monkeypatch.setenv("LAB5_DATA", str(dataset_factory(n_train=45, n_test=2)))
    seen = {}

    def fake_cv_runs(ds, configs):
        seen.update(configs)
        folds = pd.DataFrame([{"fold": f, **{c: 0.5 for c in METRIC_COLUMNS}} for f in range(3)])
        return {n: CVRun(folds, None, {}) for n in configs}

    monkeypatch.setattr(S, "cv_runs", fake_cv_runs)
    assert S.main(["--rows", "candidates", "--seeds", "1"]) == 0
    assert {n for n, _, _ in seen} == set(S.CANDIDATES)
    fourth = seen[(S.FOURTH_HEAD, 1, 0)]
    assert fourth == seen[(S.MEAN, 1, 0)].replace(model="concat+cross_attention+gated+late")
    assert any((tmp_path / "out").rglob(S.CANDIDATES_FILE)) and "accuracy: folds won" in capsys.readouterr().out


def test_the_words_command_scores_every_use_of_the_words_on_all_rows_and_on_those_with_words(
        dataset_factory, tmp_path, monkeypatch, patched_encoders):
    import lab5.experiments.words as W

    ds = __import__("lab5").load_dataset(dataset_factory(n_train=60, n_test=2))
    words = ["GLUEDWORDS ON A SIGN" if k % 3 == 0 else "" for k in range(len(ds.all))]
    monkeypatch.setattr(W, "image_words", lambda ds, cache, jobs: pd.DataFrame({"guid": ds.all.guid, "words": words}))
    cfg = Config(progress=False, jobs=1, epochs=1, folds=2, text_encoder="minilm", model="gated+late")
    table = W.word_rows(ds, cfg, [0])
    assert list(table.model.unique()) == list(W.ROWS) and len(table) == 2 * len(W.ROWS)
    assert {"accuracy_words", "macro_f1_no_words"} <= set(table.columns)
    summary = W.summary(table)
    assert summary.loc[W.CONTROL, "Δ accuracy"] == 0 and summary.loc[W.CONTROL, "won"] == "0/2"
    assert W.segmented("GLUEDWORDS ON 12") == "GLUED WORDS ON 12"


def test_the_adoption_rule_asks_a_better_mean_and_four_of_every_five_folds_won():
    from lab5.ablation import passes

    assert passes([0.01, 0.01, 0.01, 0.01, -0.01]) and not passes([0.01, 0.01, 0.0, 0.0, 0.02])  # a tie is no win
    assert not passes([0.01, 0.01, 0.01, 0.01, -0.05])  # worse on average
    assert passes([0.01] * 12 + [-0.001] * 3) and not passes([0.01] * 11 + [-0.001] * 4)  # 12 of 15 seed-folds


def test_confirmations_pair_each_row_with_its_control_on_every_seed_fold():
    from lab5.experiments.seeds import confirmations

    rows = [{"model": m, "seed": s, "fold_seed": 0, "fold": f, "accuracy": 0.7 + (0.01 if m == "a" and f else 0),
             "macro_f1": 0.6} for m in ("a", "b") for s in (0, 1, 2) for f in range(5)]
    table = confirmations(pd.DataFrame(rows), {"a over b": ("a", "b")})
    assert table.loc["a over b", "seed-folds won"] == "12/15" and table.loc["a over b", "confirmed"]
    assert table.loc["a over b", "Δ accuracy (points)"] == 0.8


def test_the_also_tried_table_reads_the_committed_tables_with_their_stages(dataset_factory, monkeypatch, tmp_path):
    import lab5.experiments.seeds as S
    from lab5 import load_dataset

    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    rows = [{"model": m, "control": c, "fold": f, "accuracy": a + (0.01 if f else -0.01) * (m != "late"), "macro_f1": 0.5}
            for m, c, a in (("late", None, 0.7), ("late, 2 epochs", "late", 0.71), ("late + gone", "late", 0.69))
            for f in range(5)]
    pd.DataFrame(rows).to_csv(figures / "05_experiments.csv", index=False)
    (figures / "05_experiments.json").write_text('{"commit": "abc1234"}')
    tried = S.tried_with_stages(Config(progress=False), ds, pd.DataFrame(rows).iloc[:0], kept=("late",))
    assert tried.stage.to_dict() == {"late, 2 epochs": "passed the screen, screen only", "late + gone": "screened out"}
    assert tried["remade by"].to_dict() == {"late, 2 epochs": "HEAD", "late + gone": "commit abc1234"}
