"""lab5.cli: exit codes, one-line errors without tracebacks, and train -> predict end to end on synthetic data.

Training runs route the encoders to the tiny seeded ones from conftest (``patched_encoders``), so a whole
train -> predict cycle takes seconds; the real encoders are covered in test_encoders / test_features.
"""
from __future__ import annotations

import argparse
import dataclasses

import nbformat
import pandas as pd
import pytest
from synthetic import jpeg_bytes

from lab5.cli import COMMANDS, OPTIONS, build_parser, main
from lab5.config import Config
from lab5.data import load_dataset, read_labels
from lab5.errors import ConfigError
from lab5.metrics import confusion, metrics, summarize
from lab5.features import load_features
from lab5.pipeline import load_model, validation_predictions

#: where a run runs: what a checkpoint is run with (its model and training are the checkpoint's)
RUN = ["--device", "cpu", "--no-progress"]
#: the options of a fast ``features`` run, and of a fast training
FEATURES = [*RUN, "--max-length", "16", "--text-encoder", "minilm"]
FAST = [*FEATURES, "--epochs", "3", "--batch-size", "4", "--hidden", "16", "--attention-hidden", "8"]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_validate_prints_pair_counts_on_a_good_folder(dataset_factory, capsys):
    root = dataset_factory(n_train=12, n_test=3)
    (root / "data" / "2.txt").write_bytes("你好…".encode("gb18030"))
    assert main(["validate", "--data", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "pairs: 12 train (labelled) + 3 test" in out
    assert "positive 4 (33.3%)" in out
    assert "14 UTF-8, 1 GBK/GB18030" in out
    assert "images: 15 decoded; sizes 32x32 to 32x32; modes {'RGB': 15}" in out
    assert "validation split: 3 of 12 labelled rows (not stored yet" in out
    assert "(the course data)" not in out


def _missing_jpg(root):
    (root / "data" / "5.jpg").unlink()
    return "guid 5"


def _unknown_tag(root):
    (root / "train.txt").write_text((root / "train.txt").read_text().replace("\n5,neutral\n", "\n5,joyful\n"))
    return "guid 5"


def _duplicate_guid(root):
    (root / "train.txt").write_text((root / "train.txt").read_text() + "5,negative\n")
    return "guid 5"


def _no_header(root):
    lines = (root / "train.txt").read_text().splitlines(keepends=True)
    (root / "train.txt").write_text("".join(lines[1:]))
    return str(root / "train.txt")


def _corrupt_jpg(root):
    (root / "data" / "5.jpg").write_bytes(jpeg_bytes(noise=5)[:200])
    return "guid 5"


def _text_missing(root):
    (root / "data" / "5.txt").unlink()
    return "guid 5"


@pytest.mark.parametrize("defect", [_missing_jpg, _unknown_tag, _duplicate_guid, _no_header, _corrupt_jpg, _text_missing],
                         ids=lambda f: f.__name__.strip("_"))
def test_validate_exits_2_with_one_error_line_naming_the_defect(dataset_factory, capsys, defect):
    root = dataset_factory(n_train=12, n_test=3)
    needle = defect(root)
    assert main(["validate", "--data", str(root), "--no-progress"]) == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and cap.out == ""
    errors = _error_lines(cap.err)
    assert len(errors) == 1 and needle in errors[0]
    assert len(cap.err.strip().splitlines()) == 1


def test_validate_on_a_wrong_folder_exits_2_with_one_line(tmp_path, capsys):
    assert main(["validate", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no dataset at") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_of_every_subcommand_exits_0(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m lab5 " + command) and "--data" in out


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def _listed(help_text: str) -> set[str]:
    """The options a ``--help`` lists, one a line."""
    return {line.split()[0] for line in help_text.splitlines() if line.startswith("  --")}


def _flag(field: str) -> str:
    return "--no-progress" if field == "progress" else "--" + field.replace("_", "-")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_lists_the_options_the_command_reads_on_one_screen(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = _help(command, capsys)
    fields, own = OPTIONS[command]
    assert _listed(text) == {*own, *map(_flag, fields)}
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 100, (len(lines), max(map(len, lines)))
    assert "(default: " in next(line for line in lines if line.startswith("  --data"))  # a cut help keeps its default


def test_help_spot_checks(capsys):
    run = {"--data", "--cache", "--no-progress", "--jobs", "--device"}
    assert _listed(_help("validate", capsys)) == {"--data", "--cache", "--no-progress"}
    assert _listed(_help("evaluate", capsys)) == run | {"--checkpoint"}
    assert _listed(_help("features", capsys)) == run | {"--text-encoder", "--image-encoder", "--max-length",
                                                        "--image-size", "--seed"}
    assert _listed(_help("reproduce", capsys)) == {"--data", "--cache", "--out-dir", "--only", "--profile"}
    every = set(map(_flag, (f.name for f in dataclasses.fields(Config))))
    assert _listed(_help("train", capsys)) == every | {"--out"}
    assert _listed(_help("predict", capsys)) == every | {"--out", "--checkpoint"}
    finetuning = {"--finetune", "--finetune-layers", "--encoder-lr"}  # cross-validation trains on cached features
    assert _listed(_help("cv", capsys)) == every - finetuning - {"--out-dir"} | {"--models", "--out"}
    tune = every - finetuning - {"--fold-seed"}  # the search draws its own folds
    assert _listed(_help("tune", capsys)) == tune | {"--trials", "--search-seed", "--out"}
    assert "--epochs" not in _help("validate", capsys)


def test_an_option_is_the_same_in_every_command():
    """One Config field, one option: the same flag, type, help and metavar wherever it is offered."""
    (commands,) = [a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    seen = {}
    for sp in commands.values():
        for a in sp._actions:
            if a.dest in OPTIONS["train"][0]:
                assert seen.setdefault(a.dest, (a.option_strings, a.type, a.help, a.metavar)) == (
                    a.option_strings, a.type, a.help, a.metavar)
    assert len(seen) == len(dataclasses.fields(Config))


def test_unknown_option_value_type_exits_2_from_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "many"])
    assert e.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def _train_predict(root, tmp_path, tag, model="concat"):
    ck = tmp_path / f"ck-{tag}"
    out = tmp_path / f"pred-{tag}.txt"
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), *FAST]
    assert main(["train", *common, "--model", model, "--out", str(ck)]) == 0
    assert (ck / "model.pt").is_file() and (ck / "config.json").is_file()
    assert main(["predict", *common[:4], *RUN, "--checkpoint", str(ck), "--out", str(out)]) == 0
    return out


def _shuffled_test_file(root, n_train):
    order = [str(n_train + k) for k in (5, 2, 4, 1, 3)]  # a test file not in numeric order
    (root / "test_without_label.txt").write_text("guid,tag\n" + "".join(f"{g},null\n" for g in order))
    return order


def test_train_then_predict_writes_valid_predictions_in_test_order_and_repeats_bytewise(
        dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=18, n_test=5)
    test_order = _shuffled_test_file(root, 18)
    first = _train_predict(root, tmp_path, "a")
    out = capsys.readouterr().out
    assert "concat: 3 epochs, validation macro-F1" in out and f"wrote 5 predictions to {first}" in out
    df = read_labels(first)
    assert list(df.guid) == test_order
    assert set(df.tag) <= {"positive", "neutral", "negative"}
    assert first.read_text().startswith("guid,tag\n")
    second = _train_predict(root, tmp_path, "b")
    assert second.read_bytes() == first.read_bytes()
    assert patched_encoders == {"text": 4, "image": 4}  # train and predict load the (tiny) encoders, twice


def test_an_ensemble_trains_and_predicts_from_the_command_line(dataset_factory, tmp_path, capsys, patched_encoders):
    root, model = dataset_factory(n_train=18, n_test=5), "late+concat"
    ck, out = tmp_path / "ck", tmp_path / "pred.txt"
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), *FAST]
    assert main(["train", *common, "--model", model, "--out", str(ck)]) == 0
    assert f"{model}: 3 epochs, validation macro-F1 " in capsys.readouterr().out
    assert main(["predict", *common[:4], *RUN, "--checkpoint", str(ck), "--out", str(out)]) == 0
    assert len(read_labels(out)) == 5


def test_predict_from_a_checkpoint_runs_no_cv(dataset_factory, tmp_path, patched_encoders, monkeypatch):
    import lab5.pipeline as P

    root = dataset_factory(n_train=45, n_test=5)
    ck, out = tmp_path / "ck", tmp_path / "pred.txt"
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), *FAST]
    assert main(["train", *common, "--model", "late+concat", "--out", str(ck)]) == 0
    monkeypatch.setattr(P, "cv_runs", lambda *a, **k: pytest.fail("predict ran a CV"))
    assert main(["predict", *common[:4], *RUN, "--checkpoint", str(ck), "--out", str(out)]) == 0
    assert out.is_file()


def test_predict_command_exits_0_and_reports_the_counts(dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=45, n_test=5)
    test_order = _shuffled_test_file(root, 45)
    out = tmp_path / "pred.txt"
    rc = main(["predict", "--data", str(root), "--cache", str(tmp_path / "cache"), *FAST, "--model", "concat",
               "--folds", "3", "--out", str(out)])
    written = read_labels(out)
    assert list(written.guid) == test_order  # the file itself is fine
    assert rc == 0
    counts = written.tag.value_counts()
    assert f"wrote 5 predictions to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) in capsys.readouterr().out


def test_cv_prints_a_mean_std_table_with_the_baseline(dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=45, n_test=2)
    csv = tmp_path / "cv.csv"
    assert main(["cv", "--data", str(root), "--cache", str(tmp_path / "cache"), *FAST, "--epochs", "1",
                 "--folds", "3", "--models", "text,image", "--out", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "3-fold cross-validation on 45 labelled rows" in out
    table = pd.read_csv(csv)
    assert summarize(table, ["accuracy", "macro_f1", "f1_neutral"]).to_string() in out  # the printed table is the CSV's
    assert len(table) == 9 and list(table.model) == ["always_positive"] * 3 + ["text"] * 3 + ["image"] * 3
    assert table[table.model == "always_positive"].accuracy.tolist() == pytest.approx([1 / 3] * 3)


def test_predict_with_a_bad_device_exits_2_and_writes_nothing(dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=12, n_test=3)
    out = tmp_path / "pred.txt"
    rc = main(["predict", "--data", str(root), "--cache", str(tmp_path / "cache"), "--no-progress",
               "--device", "tpu", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    errors = _error_lines(err)
    assert "Traceback" not in err and len(errors) == 1 and "unknown --device 'tpu'" in errors[0]
    assert not out.exists()


def test_unknown_model_exits_2(dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=12, n_test=3)
    rc = main(["train", "--data", str(root), "--cache", str(tmp_path / "cache"), *FAST, "--model", "svm",
               "--out", str(tmp_path / "ck")])
    assert rc == 2
    assert "unknown model 'svm'" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


def test_evaluate_scores_a_checkpoint_on_the_validation_rows(dataset_factory, tmp_path, capsys, patched_encoders):
    root = dataset_factory(n_train=18, n_test=2)
    ck = tmp_path / "ck"
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), *FAST]
    assert main(["train", *common, "--model", "gated", "--out", str(ck)]) == 0
    capsys.readouterr()
    assert main(["evaluate", *common[:4], *RUN, "--checkpoint", str(ck)]) == 0
    out = capsys.readouterr().out
    model, cfg = load_model(ck)
    ds = load_dataset(root)
    y, pred = validation_predictions(model, cfg, ds, load_features(ds, cfg))
    m = metrics(y, pred)
    assert (f"gated on the 3 validation rows (the rows `train` scores each epoch on): "
            f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, weighted-F1 {m['weighted_f1']:.3f}\n") in out
    assert out.endswith(confusion(y, pred).to_string() + "\n")


def _project(tmp_path):
    """A project checkout to run ``reproduce`` in: a numbered notebook (which must never run here) and pyproject.toml."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise SystemExit('the notebook ran')")]
    nbformat.write(nb, project / "notebooks" / "01_x.ipynb")
    return project


def _command_args(command, root, tmp_path):
    """Arguments of a fast run of ``command`` on ``root`` (predictions, if any, to tmp_path/pred.txt)."""
    fast = {"features": FEATURES, "reproduce": []}.get(command, FAST)  # the options the command takes
    args = [command, "--data", str(root), "--cache", str(tmp_path / "cache"), *fast]
    return args + ["--out", str(tmp_path / "pred.txt")] if command == "predict" else args


@pytest.mark.parametrize("command", ["features", "train", "cv", "predict", "reproduce"])
@pytest.mark.parametrize("defect", [_unknown_tag, _missing_jpg, _no_header], ids=lambda f: f.__name__.strip("_"))
def test_every_command_refuses_bad_data_with_exit_2_naming_the_problem(dataset_factory, tmp_path, capsys, patched_encoders,
                                                                       monkeypatch, command, defect):
    root = dataset_factory(n_train=12, n_test=3)
    needle = defect(root)
    if command == "reproduce":
        monkeypatch.chdir(_project(tmp_path))  # reproduce runs inside a project; bad data stops it before a notebook
    assert main(_command_args(command, root, tmp_path)) == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    errors = _error_lines(cap.err)
    assert len(errors) == 1 and needle in errors[0]
    assert not (tmp_path / "pred.txt").exists()
    assert not (tmp_path / "out").exists()  # nothing written to the output root


@pytest.mark.parametrize("command", ["features", "train", "predict"])
def test_a_corrupt_image_stops_feature_extraction_with_exit_2_naming_guid_and_path(
        dataset_factory, tmp_path, capsys, patched_encoders, command):
    root = dataset_factory(n_train=45, n_test=3)  # enough rows for predict's cross-validation
    needle = _corrupt_jpg(root)
    assert main(_command_args(command, root, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert needle in _error_lines(err)[0] and "5.jpg" in _error_lines(err)[0]
    assert not (tmp_path / "pred.txt").exists()


def test_reproduce_hands_its_folders_to_the_notebook_kernels(dataset_factory, tmp_path, monkeypatch, isolated):
    """--data, --out-dir and --cache reach every kernel as LAB5_DATA, LAB5_OUT, LAB5_CACHE (absolute: a kernel runs in
    notebooks/); no notebook runs here."""
    import lab5.cli
    from lab5.reproduce import kernel_env

    root, project = dataset_factory(n_train=12, n_test=3), _project(tmp_path)
    monkeypatch.chdir(project)
    seen = {}

    def run_notebooks(project, data, out, paths, profile_to=None, cache=None):
        seen["env"] = kernel_env(project, data, out, cache, profile_to)
        return []

    monkeypatch.setattr(lab5.cli, "run_notebooks", run_notebooks)
    assert main(["reproduce", "--data", str(root), "--cache", "elsewhere", "--out-dir", str(tmp_path / "o")]) == 0
    env = seen["env"]
    assert env["LAB5_CACHE"] == str(project.resolve() / "elsewhere")
    assert (env["LAB5_DATA"], env["LAB5_OUT"]) == (str(root.resolve()), str((tmp_path / "o").resolve()))
    assert kernel_env(project, root, tmp_path)["LAB5_CACHE"] == str(isolated["cache"])  # no --cache: this one's


def test_a_checkpoint_runs_with_the_run_options_of_the_command_line(monkeypatch):
    import lab5.cli

    seen = {}

    def load_model(path, **overrides):
        seen.update(overrides)
        raise ConfigError("stop here")

    monkeypatch.setattr(lab5.cli, "load_model", load_model)
    assert main(["evaluate", "--checkpoint", "ck", "--jobs", "3", "--device", "cpu", "--no-progress"]) == 2
    assert set(seen) == {"data", "cache", "progress", "jobs", "device"}
    assert (seen["jobs"], seen["device"], seen["progress"]) == (3, "cpu", False)
