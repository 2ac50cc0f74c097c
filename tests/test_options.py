"""A bad option is refused before any work: exit code 2, one ``error:`` line on stderr (no traceback, no colour
codes), and nothing written anywhere (working folder, cache, output paths)."""
from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic import make_dataset, snapshot, work_folder

import lab5
from lab5.cli import OPTIONS, main
from lab5.config import Config
from lab5.errors import ConfigError

PACKAGE = Path(lab5.__file__).resolve().parent
REPO = PACKAGE.parent


@pytest.fixture(autouse=True)
def isolated(isolated, tmp_path, monkeypatch):
    """conftest's isolation, run from ``tmp_path/work``: a working folder apart from the datasets beside it."""
    return {**isolated, "work": work_folder(tmp_path, monkeypatch)}



def run_main(argv: list[str]) -> int:
    """``lab5.cli.main`` in-process; argparse's own exits (SystemExit) are turned into their code."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


def assert_one_error_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "\x1b[" not in stderr, repr(stderr)
    lines = stderr.rstrip("\n").splitlines()
    assert lines and lines[0].startswith("error: "), stderr
    # further problems (if any) are indented below the one error line
    assert all(line.startswith("  ") for line in lines[1:]), stderr
    assert sum(line.lstrip().startswith("error") for line in lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)


# --------------------------------------------------------------------------- bad option values
BAD_OPTIONS = [
    (["cv", "--folds", "1"], "--folds"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--dropout", "1.0"], "--dropout"),
    (["train", "--device", "tpu"], "--device"),
    (["train", "--model", "nope"], "'nope'"),
    (["train", "--model", "late+late"], "late+late"),
    (["train", "--combine", "mean"], "--combine"),  # an option since deleted
    (["train", "--finetune", "--text-encoder", "minilm+mpnet", "--model", "late"], "--finetune"),
    (["train", "--image-encoder", "vgg"], "--image-encoder"),
    (["train", "--bogus"], "--bogus"),  # argparse's own usage error
    (["train", "--epochs", "three"], "--epochs"),  # argparse: not an int
    # an option the command could not honour: refused, never ignored
    (["reproduce", "--epochs", "1"], "committed recipe"),
    (["validate", "--epochs", "1"], "not an option of validate: --epochs 1"),
    (["cv", "--finetune"], "not an option of cv: --finetune"),
    (["predict", "--checkpoint", "ck", "--epochs", "1"], "--epochs has no effect with --checkpoint"),
    (["predict", "--checkpoint", "ck", "--finetune"], "--finetune has no effect with --checkpoint"),
    (["train", "--out", "ck", "--out-dir", "o"], "--out-dir has no effect with --out"),
]


@pytest.mark.parametrize("argv,needle", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_exits_2_with_one_error_line_and_writes_nothing(argv, needle, tmp_path, capsys, isolated):
    before = snapshot(tmp_path)
    assert run_main(argv) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, needle)
    assert captured.out == ""
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists() and not isolated["out"].exists()


#: (command, field) of every Config field a command does not read
UNREAD = [(c, f.name) for c, (fields, _) in OPTIONS.items() for f in dataclasses.fields(Config) if f.name not in fields]


@pytest.mark.parametrize("command,field", UNREAD, ids=[f"{c}-{f}" for c, f in UNREAD])
def test_an_option_the_command_does_not_read_is_refused_before_any_work(command, field, tmp_path, capsys, isolated):
    flag = "--" + field.replace("_", "-")
    value = Config.__dataclass_fields__[field].default  # a sound value: only where it is given is wrong
    given = [flag] if isinstance(value, bool) else [flag, str(value if field != "out_dir" else tmp_path / "o")]
    before = snapshot(tmp_path)
    assert run_main([command, *given, *(["--checkpoint", "ck"] if command == "evaluate" else [])]) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, f"not an option of {command}: {' '.join(given)}",
                          *(["runs the committed recipe"] if command == "reproduce" else []))
    assert captured.out == ""
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists() and not isolated["out"].exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is valid here")
def test_device_cuda_without_cuda_is_refused(tmp_path, capsys, isolated):
    before = snapshot(tmp_path)
    assert run_main(["train", "--device", "cuda"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--device cuda")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- bad output paths (checked before any work)
def test_predict_out_under_a_file_is_refused(tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=6, n_test=2)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    before = snapshot(tmp_path)
    assert run_main(["predict", "--data", ds, "--out", blocker / "preds.txt", "--no-progress", "--epochs", "1"]) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, str(blocker.resolve()))
    assert "wrote" not in captured.out
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists()


def test_predict_out_that_is_a_folder_is_refused(tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=6, n_test=2)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    before = snapshot(tmp_path)
    assert run_main(["predict", "--data", ds, "--out", folder, "--no-progress", "--epochs", "1"]) == 2
    assert_one_error_line(capsys.readouterr().err, "is a folder")
    assert snapshot(tmp_path) == before


def test_train_out_dir_that_is_a_file_is_refused(tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=6, n_test=2)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    before = snapshot(tmp_path)
    assert run_main(["train", "--data", ds, "--out-dir", blocker, "--no-progress", "--epochs", "1", "--model", "late"]) == 2
    assert_one_error_line(capsys.readouterr().err, str(blocker.resolve()))
    assert snapshot(tmp_path) == before
    assert blocker.read_text() == "a file, not a folder\n"
    assert not isolated["cache"].exists()


def test_train_out_that_is_a_file_is_refused(tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=6, n_test=2)
    blocker = tmp_path / "blocker"
    blocker.write_text("x\n")
    before = snapshot(tmp_path)
    assert run_main(["train", "--data", ds, "--out", blocker, "--no-progress", "--epochs", "1", "--model", "late"]) == 2
    assert_one_error_line(capsys.readouterr().err, "is a file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command, rows", [("train", "37"), ("predict", "46"), ("cv", "31")])
def test_more_train_rows_than_there_are_is_refused_before_any_work(command, rows, tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=45, n_test=2)  # train: 45 less the split's 9; predict: all 45; cv: 30 a part
    before = snapshot(tmp_path)
    argv = [command, "--data", ds, "--train-rows", rows, "--no-progress", "--model", "late", "--text-encoder", "minilm"]
    assert run_main(argv + (["--folds", "3"] if command == "cv" else [])) == 2
    assert_one_error_line(capsys.readouterr().err, f"--train-rows {rows} asks for more rows than the")
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists() and not isolated["out"].exists()


def test_cv_out_under_a_file_is_refused_before_loading_data(tmp_path, capsys, isolated):
    # root may write anywhere (a chmod'ed folder would not stop it): a parent that is a FILE blocks everyone
    blocker = tmp_path / "blocker"
    blocker.write_text("x\n")
    before = snapshot(tmp_path)
    # no --data: the default ./data does not exist, so an error about the data would mean the path was checked late
    assert run_main(["cv", "--out", blocker / "sub" / "cv.csv", "--no-progress"]) == 2
    assert_one_error_line(capsys.readouterr().err, "CSV file", str(blocker.resolve()))
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into a read-only folder")
def test_cv_out_in_a_read_only_folder_is_refused(tmp_path, capsys, isolated):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        before = snapshot(tmp_path)
        assert run_main(["cv", "--out", locked / "cv.csv", "--no-progress"]) == 2
        assert_one_error_line(capsys.readouterr().err, "no write permission")
        assert snapshot(tmp_path) == before
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or not os.path.isdir("/proc/self"),
                    reason="needs root (os.access says yes to root on /proc) and a /proc")
def test_predict_out_under_proc_is_refused_as_root_before_any_work(tmp_path, capsys, isolated):
    ds = make_dataset(tmp_path, n_train=12, n_test=2)
    before = snapshot(tmp_path)
    assert run_main(["predict", "--data", ds, "--out", "/proc/nope/x.txt", "--no-progress", "--model", "late"]) == 2
    assert_one_error_line(capsys.readouterr().err, "predictions file", "/proc/nope/x.txt", "cannot be written")
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists()


# --------------------------------------------------------------------------- reproduce --only
@pytest.fixture
def mini_project(tmp_path, monkeypatch):
    """A folder that looks like a project checkout (pyproject.toml, two numbered notebooks), as the working folder.
    The notebooks are not even valid JSON: --only is checked before any notebook is read or any data loaded."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'mini'\n")
    for name in ("01_a.ipynb", "02_b.ipynb"):
        (project / "notebooks" / name).write_text("not run\n")
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize("only", ["x", "99", "1,x", ","])
def test_reproduce_only_unknown_number_is_refused(only, mini_project, tmp_path, capsys, isolated):
    before = snapshot(tmp_path)
    assert run_main(["reproduce", "--only", only]) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, "--only")
    assert "01" in captured.err and "02" in captured.err  # the numbers that do exist are listed
    assert captured.out == ""
    assert snapshot(tmp_path) == before


def test_reproduce_outside_a_project_is_refused(tmp_path, capsys, isolated):
    from lab5.config import find_project

    if find_project() is not None:
        pytest.skip("the tmp folder lies inside a project checkout")
    before = snapshot(tmp_path)
    assert run_main(["reproduce", "--only", "1"]) == 2
    assert_one_error_line(capsys.readouterr().err, "project")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- the real entry point
def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAB5_OUT", "LAB5_DATA")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LAB5_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


@pytest.mark.parametrize("argv,needle", [(["train", "--batch-size", "0"], "--batch-size"),
                                         (["train", "--bogus"], "--bogus")])
def test_python_m_lab5_reports_a_bad_option_the_same_way(argv, needle, tmp_path, isolated):
    work = isolated["work"]
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "lab5", *argv], cwd=work, env=cli_env(isolated["cache"]),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, needle)
    assert proc.stdout == ""
    assert snapshot(tmp_path) == before
    assert not isolated["cache"].exists()


# --------------------------------------------------------------------------- Config in Python
BAD_CONFIGS = [
    ({"batch_size": 0}, "--batch-size"),
    ({"epochs": 0}, "--epochs"),
    ({"lr": 0.0}, "--lr"),
    ({"dropout": 1.0}, "--dropout"),
    ({"folds": 1}, "--folds"),
    ({"device": "tpu"}, "--device"),
    ({"model": "nope"}, "nope"),
    ({"model": "late+late"}, "late+late"),
    ({"image_encoder": "vgg"}, "--image-encoder"),
    ({"finetune": True, "model": "late", "text_encoder": "minilm+mpnet"}, "--finetune"),
    ({"epochs": "3"}, "--epochs"),  # a string where an int is wanted
    ({"jobs": True}, "--jobs"),  # a bool is not an int here
]


@pytest.mark.parametrize("bad,needle", BAD_CONFIGS, ids=[str(b) for b, _ in BAD_CONFIGS])
def test_config_raises_config_error_naming_the_option(bad, needle, tmp_path):
    with pytest.raises(ConfigError) as e:
        Config(data=tmp_path / "ds", cache=tmp_path / "cache", **bad)
    assert needle in str(e.value)
    assert isinstance(e.value, ValueError)
    assert e.value.problems and all("\n" not in p for p in e.value.problems)


def test_config_replace_is_checked_too(tmp_path):
    cfg = Config(data=tmp_path / "ds", cache=tmp_path / "cache", device="cpu")
    with pytest.raises(ConfigError, match="--batch-size"):
        cfg.replace(batch_size=0)


def test_config_lists_every_bad_value(tmp_path):
    with pytest.raises(ConfigError) as e:
        Config(data=tmp_path / "ds", cache=tmp_path / "cache", batch_size=0, lr=-1.0, device="tpu")
    text = str(e.value)
    assert "--batch-size" in text and "--lr" in text and "--device" in text


# --------------------------------------------------------------------------- no assert statements in lab5
def test_no_assert_statement_in_lab5():
    """``python -O`` strips assert statements: a user-facing check must raise a real exception."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.relative_to(REPO)}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert not found, f"assert statements in lab5: {found}"


# --------------------------------------------------------------------------- bad values that once escaped as tracebacks
def test_an_attention_width_the_heads_do_not_divide_is_a_config_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--attention-hidden 6 is not a multiple of the 4 attention heads"):
        Config(data=tmp_path / "ds", cache=tmp_path / "cache", attention_hidden=6)
    assert run_main(["train", "--attention-hidden", "6"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--attention-hidden")


@pytest.mark.parametrize("bad", [{"lr": float("inf")}, {"dropout": float("nan")}, {"weight_decay": float("nan")}],
                         ids=["lr-inf", "dropout-nan", "weight-decay-nan"])
def test_non_finite_numbers_are_config_errors(bad, tmp_path):
    with pytest.raises(ConfigError, match="--" + next(iter(bad)).replace("_", "-")):
        Config(data=tmp_path / "ds", cache=tmp_path / "cache", **bad)


def test_negative_seed_is_a_config_error(tmp_path, capsys, patched_encoders):
    ds = make_dataset(tmp_path, n_train=12, n_test=3)
    rc = run_main(["train", "--data", ds, "--seed", "-1", "--model", "late", "--epochs", "1", "--no-progress",
                   "--out", tmp_path / "ckpt"])
    assert rc == 2
    assert_one_error_line(capsys.readouterr().err, "--seed")


def test_max_length_beyond_the_encoder_is_an_error_line(tmp_path, capsys, patched_encoders):
    ds = make_dataset(tmp_path, n_train=12, n_test=3)
    assert run_main(["features", "--data", ds, "--max-length", "100000", "--no-progress"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--max-length")


def test_cv_on_too_few_rows_is_an_error_line(tmp_path, capsys, patched_encoders):
    ds = make_dataset(tmp_path, n_train=12, n_test=3)  # 4 rows per class, default --folds 5
    assert run_main(["cv", "--data", ds, "--model", "late", "--epochs", "1", "--no-progress"]) == 2
    assert_one_error_line(capsys.readouterr().err)
