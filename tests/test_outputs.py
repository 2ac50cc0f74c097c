"""Where things are written: never into the package, outputs under one output root per run, the work tree's own
deliverable untouched by another dataset; ``validate`` writes nothing at all; ``reproduce`` runs notebooks with the
run's data and output root."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import jpeg_bytes, make_dataset, snapshot, work_folder

import lab5
from lab5.cli import main
from lab5.config import Config, find_project
from lab5.data import load_dataset, read_labels
from lab5.errors import ConfigError
from lab5.outputs import PREDICTIONS, check_writable, is_course_data, output_root
from lab5.splits import COMMITTED_SPLITS, get_split

PACKAGE = Path(lab5.__file__).resolve().parent
REPO = PACKAGE.parent
needs_kernel = pytest.mark.skipif(importlib.util.find_spec("ipykernel") is None or importlib.util.find_spec("nbclient") is None,
                                  reason="ipykernel / nbclient not installed")


@pytest.fixture(autouse=True)
def isolated(isolated, tmp_path, monkeypatch):
    """conftest's isolation, run from ``tmp_path/work``: a working folder apart from the datasets beside it."""
    return {**isolated, "work": work_folder(tmp_path, monkeypatch)}



def package_snapshot() -> tuple[set[str], dict[str, tuple]]:
    """The package's file names (bytecode caches aside) and the full state of its committed splits. Only new or
    removed names are compared for the rest: another engineer may be editing the modules meanwhile."""
    names = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*") if "__pycache__" not in p.parts}
    return names, snapshot(COMMITTED_SPLITS)


def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAB5_OUT", "LAB5_DATA")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LAB5_CACHE=str(cache), TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


def make_project(folder: Path) -> Path:
    """A folder that looks like a project checkout: pyproject.toml and notebooks/."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'tmp-project'\n")
    return folder


# --------------------------------------------------------------------------- validate writes nothing
def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


# make_dataset(n_train=6, n_test=2): train guids 1..6 tagged positive, neutral, negative, ...; test guids 7, 8
BROKEN = {
    "missing header": (lambda r: _rewrite(r / "train.txt", "guid,tag\n", ""), ["train.txt", "header"]),
    "unknown tag": (lambda r: _rewrite(r / "train.txt", "2,neutral", "2,happy"), ["train.txt", "guid 2", "happy"]),
    "duplicate guid": (lambda r: _rewrite(r / "train.txt", "6,negative\n", "6,negative\n3,negative\n"),
                       ["train.txt", "guid 3", "duplicate"]),
    "missing txt": (lambda r: (r / "data" / "4.txt").unlink(), ["guid 4", "4.txt"]),
    "missing jpg": (lambda r: (r / "data" / "5.jpg").unlink(), ["guid 5", "5.jpg"]),
    "corrupt jpg": (lambda r: (r / "data" / "2.jpg").write_bytes(b"this is not a JPEG\n" * 20), ["guid 2", "2.jpg"]),
    "truncated jpg": (lambda r: (r / "data" / "3.jpg").write_bytes(jpeg_bytes(size=(64, 64), noise=3)[:600]), ["guid 3", "3.jpg"]),
    "guid in both files": (lambda r: _rewrite(r / "test_without_label.txt", "7,null\n", "7,null\n1,null\n"),
                           ["guid 1", "train.txt", "test_without_label.txt"]),
    "empty train.txt": (lambda r: (r / "train.txt").write_bytes(b""), ["train.txt"]),
    "non-UTF-8 train.txt": (lambda r: (r / "train.txt").write_bytes("guid,tag\n1,positive\n2,neutral \u00e9\u00e9\n".encode("latin-1")),
                            ["train.txt", "UTF-8"]),
    "malformed line": (lambda r: _rewrite(r / "train.txt", "5,neutral\n", "5,neutral,extra\n"), ["train.txt", "malformed"]),
    "test tag not null": (lambda r: _rewrite(r / "test_without_label.txt", "8,null", "8,positive"),
                          ["test_without_label.txt", "guid 8"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_broken_folder_exits_2_naming_the_problem_and_writes_nothing(case, tmp_path, capsys, isolated):
    root = make_dataset(tmp_path, n_train=6, n_test=2)
    breaker, needles = BROKEN[case]
    breaker(root)
    before, pkg_before = snapshot(tmp_path, isolated["cache"]), package_snapshot()
    assert main(["validate", "--data", str(root), "--no-progress"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.rstrip("\n").splitlines()
    assert lines and lines[0].startswith("error: "), captured.err
    assert sum(line.startswith("error") for line in lines) == 1 and "Traceback" not in captured.err
    for needle in needles:
        assert needle in captured.err, (needle, captured.err)
    assert "OK" not in captured.out
    assert snapshot(tmp_path, isolated["cache"]) == before
    assert package_snapshot() == pkg_before
    assert not isolated["cache"].exists()


def test_validate_good_folder_exits_0_and_writes_nothing(tmp_path, capsys, isolated):
    root = make_dataset(tmp_path, n_train=12, n_test=3)
    before, pkg_before = snapshot(tmp_path), package_snapshot()
    assert main(["validate", "--data", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "not stored yet" in out
    assert snapshot(tmp_path) == before
    assert package_snapshot() == pkg_before
    assert not isolated["cache"].exists()  # not even the cache folder


# --------------------------------------------------------------------------- the split of another dataset goes to the cache
def test_get_split_of_a_synthetic_dataset_is_stored_in_the_cache(tmp_path, isolated):
    ds = load_dataset(make_dataset(tmp_path, n_train=15, n_test=3))
    pkg_before = package_snapshot()
    split = get_split(ds)  # no cache given: LAB5_CACHE
    expected = isolated["cache"] / "splits" / f"val-{ds.labels_fingerprint}.txt"
    assert split.path == expected and expected.is_file()
    assert PACKAGE not in split.path.resolve().parents
    assert not (COMMITTED_SPLITS / expected.name).exists()
    assert package_snapshot() == pkg_before
    # an explicit cache is honoured too, and the same rows are drawn
    other = get_split(ds, tmp_path / "other-cache")
    assert other.path == tmp_path / "other-cache" / "splits" / expected.name and other.val == split.val
    assert set(split.train) | set(split.val) == set(ds.train.guid) and not set(split.train) & set(split.val)
    # read back, not drawn again
    assert get_split(ds).val == split.val


# --------------------------------------------------------------------------- the output root
def test_output_root_is_out_dir_when_given(tmp_path):
    ds = load_dataset(make_dataset(tmp_path))
    cfg = Config(data=ds.root, cache=tmp_path / "cache", out_dir=tmp_path / "X", device="cpu")
    outputs = output_root(cfg, ds)
    assert outputs.root == tmp_path / "X"
    assert outputs.predictions == tmp_path / "X" / PREDICTIONS
    assert outputs.figures == tmp_path / "X" / "figures" and outputs.run("late") == tmp_path / "X" / "runs" / "late"
    assert not (tmp_path / "X").exists()  # naming the root creates nothing


def test_out_dir_defaults_from_lab5_out(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB5_OUT", str(tmp_path / "from-env"))
    ds = load_dataset(make_dataset(tmp_path))
    assert output_root(Config(data=ds.root, device="cpu"), ds).root == tmp_path / "from-env"


def test_find_project_from_a_nested_subfolder(tmp_path, monkeypatch):
    project = make_project(tmp_path / "proj")
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    assert find_project(nested) == project.resolve()
    monkeypatch.chdir(nested)
    assert find_project() == project.resolve()
    # a folder with only one of the two markers is not a project
    half = tmp_path / "half"
    (half / "notebooks").mkdir(parents=True)
    assert find_project(half) in (None, find_project(tmp_path))


def test_output_root_of_another_dataset_is_a_runs_folder_of_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB5_OUT", raising=False)
    project = make_project(tmp_path / "proj")
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    ds = load_dataset(make_dataset(tmp_path, name="my-data"))
    assert not is_course_data(ds)
    cfg = Config(data=ds.root, cache=tmp_path / "cache", device="cpu")
    assert cfg.out_dir is None
    root = output_root(cfg, ds).root
    assert root == project.resolve() / "runs" / f"my-data-{ds.fingerprint}"
    assert not root.exists()


def test_output_root_outside_a_project_falls_back_to_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB5_OUT", raising=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    if find_project() is not None:
        pytest.skip("the tmp folder lies inside a project checkout")
    ds = load_dataset(make_dataset(tmp_path, name="other"))
    root = output_root(Config(data=ds.root, cache=tmp_path / "cache", device="cpu"), ds).root
    assert root.resolve() == plain.resolve() / "runs" / f"other-{ds.fingerprint}"


def test_check_writable_probes_without_touching_the_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "kept.txt").write_text("x\n")
    os.utime(folder, ns=(10**18, 10**18))
    before = os.stat(folder)
    check_writable(folder / "new" / "x.txt", folder=False)
    check_writable(folder)
    after = os.stat(folder)
    assert [p.name for p in folder.iterdir()] == ["kept.txt"]
    assert (after.st_mtime_ns, after.st_ctime_ns) == (before.st_mtime_ns, before.st_ctime_ns)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or not os.path.isdir("/proc/self"),
                    reason="needs root (os.access says yes to root on /proc) and a /proc")
def test_check_writable_refuses_proc_even_for_root():
    with pytest.raises(ConfigError, match=r"predictions file /proc/nope/x.txt cannot be written: /proc "):
        check_writable(Path("/proc/nope/x.txt"), folder=False, what="predictions file")


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="no O_TMPFILE")
@pytest.mark.parametrize("err, refused", [(13, "no write permission"), (30, "Read-only file system"), (95, None)])
def test_check_writable_reads_the_probe_error(err, refused, tmp_path, monkeypatch):
    """EACCES / EROFS: refused; EOPNOTSUPP (a filesystem without O_TMPFILE): os.access decides (here: yes)."""
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(os, "open", fail)
    if refused is None:
        check_writable(tmp_path / "x.txt", folder=False)
    else:
        with pytest.raises(ConfigError, match=refused):
            check_writable(tmp_path / "x.txt", folder=False)


def test_fingerprint_names_the_task_not_the_folder(tmp_path):
    """Two copies of one dataset share a fingerprint (their runs folders differ only by name); another test file does not."""
    a = load_dataset(make_dataset(tmp_path, name="a"))
    b = load_dataset(make_dataset(tmp_path, name="b"))
    c = load_dataset(make_dataset(tmp_path, name="c", n_test=4))
    assert a.fingerprint == b.fingerprint != c.fingerprint


# --------------------------------------------------------------------------- predict from a work tree (real encoders)
@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One feature cache for the two real-encoder runs below (same synthetic pairs: computed once)."""
    return tmp_path_factory.mktemp("shared-cache")


DELIVERABLE = b"guid,tag\n1,positive\n2,negative\n"


def _predict(project: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab5", "predict", *extra, "--epochs", "1", "--batch-size", "8",
                           "--no-progress", "--model", "late", "--folds", "3"],
                          cwd=project, env=cli_env(cache), capture_output=True, text=True, timeout=300)


def test_predict_in_a_project_writes_a_runs_folder_and_keeps_the_deliverable(tmp_path, shared_cache):
    project = make_project(tmp_path / "proj")
    (project / PREDICTIONS).write_bytes(DELIVERABLE)
    ds_root = make_dataset(tmp_path, n_train=45, n_test=3, name="tiny")
    ds = load_dataset(ds_root)
    repo_deliverable = (REPO / PREDICTIONS).read_bytes() if (REPO / PREDICTIONS).is_file() else None

    proc = _predict(project, shared_cache, "--data", str(ds_root))
    assert proc.returncode == 0, proc.stderr
    written = project / "runs" / f"tiny-{ds.fingerprint}" / PREDICTIONS
    assert written.is_file()
    assert str(written) in proc.stdout
    assert list(read_labels(written, test=False).guid) == list(ds.test.guid)  # one row per test guid, in order
    assert (project / PREDICTIONS).read_bytes() == DELIVERABLE
    assert sorted(p.name for p in project.iterdir()) == ["notebooks", "pyproject.toml", "runs", PREDICTIONS]
    assert not list(project.rglob(".*.tmp"))
    if repo_deliverable is not None:  # this checkout's own predictions are not touched either
        assert (REPO / PREDICTIONS).read_bytes() == repo_deliverable


def test_predict_with_out_dir_writes_there_only(tmp_path, shared_cache):
    project = make_project(tmp_path / "proj")
    (project / PREDICTIONS).write_bytes(DELIVERABLE)
    ds_root = make_dataset(tmp_path, n_train=45, n_test=3, name="tiny")
    out = tmp_path / "OUT"

    proc = _predict(project, shared_cache, "--data", str(ds_root), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / PREDICTIONS).is_file() and str(out / PREDICTIONS) in proc.stdout
    assert list(read_labels(out / PREDICTIONS).guid) == ["46", "47", "48"]
    assert (project / PREDICTIONS).read_bytes() == DELIVERABLE
    assert not (project / "runs").exists()


# --------------------------------------------------------------------------- reproduce's notebook runner
MARKER_CELL = """\
import os, pathlib
figures = pathlib.Path(os.environ["LAB5_OUT"]) / "figures"
figures.mkdir(parents=True, exist_ok=True)
(figures / "marker.txt").write_text(os.environ["LAB5_DATA"])
import lab5
print("lab5 from", lab5.__file__)
"""


def _notebook_project(folder: Path, cells: list[str], name: str = "01_x.ipynb") -> Path:
    import nbformat

    project = make_project(folder)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a tmp notebook"),
                                         *[nbformat.v4.new_code_cell(c) for c in cells]])
    nbformat.write(nb, project / "notebooks" / name)
    return project


def _outputs_text(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_notebook_paths_numbers(tmp_path):
    from lab5.errors import ConfigError
    from lab5.reproduce import notebook_paths

    folder = tmp_path / "nbs"
    folder.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb", "10_c.ipynb", "notes.ipynb", "3_x.ipynb"):
        (folder / name).write_text("{}")
    assert [p.name for p in notebook_paths(folder)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in notebook_paths(folder, "10, 1")] == ["01_a.ipynb", "10_c.ipynb"]
    for bad in ("x", "99", "3", ""):
        with pytest.raises(ConfigError, match="--only"):
            notebook_paths(folder, bad)
    with pytest.raises(ConfigError, match="no numbered notebooks"):
        notebook_paths(tmp_path)


@needs_kernel
def test_run_notebooks_writes_to_the_output_root_not_the_project(tmp_path):
    from lab5.reproduce import notebook_paths, run_notebooks

    project = _notebook_project(tmp_path / "proj", [MARKER_CELL])
    source = project / "notebooks" / "01_x.ipynb"
    committed = source.read_bytes()
    data, out = tmp_path / "some-data", tmp_path / "OUT"
    data.mkdir()

    times = run_notebooks(project, data, out, notebook_paths(project / "notebooks"), timeout=120)
    assert [name for name, _ in times] == ["01_x.ipynb"]
    executed = out / "notebooks" / "01_x.ipynb"
    assert executed.is_file()
    assert "lab5 from" in _outputs_text(executed) and "__init__.py" in _outputs_text(executed)
    assert (out / "figures" / "marker.txt").read_text() == str(data.resolve())
    assert source.read_bytes() == committed
    assert not (project / "figures").exists() and not (project / "notebooks" / "notebooks").exists()
    assert not list(out.rglob(".*.tmp"))


@needs_kernel
def test_run_notebooks_in_place_when_the_output_root_is_the_project(tmp_path):
    from lab5.reproduce import notebook_paths, run_notebooks

    project = _notebook_project(tmp_path / "proj", [MARKER_CELL])
    source = project / "notebooks" / "01_x.ipynb"
    committed = source.read_bytes()
    data = tmp_path / "some-data"
    data.mkdir()

    run_notebooks(project, data, project, notebook_paths(project / "notebooks"), timeout=120)
    assert source.read_bytes() != committed and "lab5 from" in _outputs_text(source)
    assert (project / "figures" / "marker.txt").read_text() == str(data.resolve())
    assert not (project / "notebooks" / "notebooks").exists()


@needs_kernel
def test_a_failing_cell_raises_notebook_failed_naming_notebook_and_cell(tmp_path):
    from lab5.errors import UserError
    from lab5.reproduce import NotebookFailed, notebook_paths, run_notebooks

    project = _notebook_project(tmp_path / "proj", ["x = 1", "raise ValueError('boom 42')"], name="01_fails.ipynb")
    source = project / "notebooks" / "01_fails.ipynb"
    committed = source.read_bytes()
    out = tmp_path / "OUT"

    with pytest.raises(NotebookFailed) as e:
        run_notebooks(project, tmp_path, out, notebook_paths(project / "notebooks"), timeout=120)
    message = str(e.value)
    assert isinstance(e.value, UserError)
    assert "\x1b[" not in message and "\n" not in message
    assert "01_fails.ipynb" in message and "cell 2" in message  # cell 0 is markdown, cell 1 runs fine
    assert "ValueError" in message and "boom 42" in message
    assert source.read_bytes() == committed
    assert not (out / "notebooks" / "01_fails.ipynb").exists()


def test_committed_predictions_is_the_project_file_or_none(tmp_path, monkeypatch):
    from lab5.outputs import committed_predictions

    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks")
    assert committed_predictions() is None  # a project without the file
    (project / PREDICTIONS).write_text("guid,tag\n1,positive\n")
    assert committed_predictions() == project.resolve() / PREDICTIONS
    monkeypatch.chdir(tmp_path)
    assert committed_predictions() is None  # outside any project
