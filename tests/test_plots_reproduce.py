"""lab5.plots (every report figure is written where the caller says) and lab5.reproduce (notebooks run in order with the run's environment; failures name the notebook and the cell)."""
from __future__ import annotations

import json

import matplotlib.text
import nbformat
import numpy as np
import pandas as pd
import pytest

from lab5 import load_dataset, plots
from lab5.data import LABELS
from lab5.errors import ConfigError
from lab5.explain import Attention
from lab5.images import image_sizes
from lab5.reproduce import COURSE_DATA_TAG, NotebookFailed, notebook_paths, run_notebooks, strip_ansi
from lab5.plots.dataset import text_stats


# --------------------------------------------------------------------------- plots
def test_every_report_figure_and_table_is_written_under_its_name(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=12, n_test=3))
    guids = list(ds.train.guid[:2])
    out = tmp_path / "figs"
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.9], "val_macro_f1": [0.3, 0.5]})
    cm = pd.DataFrame(np.eye(3, dtype=int), index=LABELS, columns=LABELS)
    cv = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "accuracy": [0.6, 0.7, 0.5, 0.5],
                       "macro_f1": [0.4, 0.5, 0.3, 0.35], "f1_negative": [0.5, 0.6, 0.4, 0.4],
                       "f1_neutral": [0.1, 0.2, 0.0, 0.1], "f1_positive": [0.7, 0.8, 0.6, 0.6]})
    from lab5.ablation import paired_differences
    figures = {
        "balance": plots.class_balance(ds),
        "lengths": plots.text_lengths(text_stats(ds.train)),
        "sizes": plots.image_sizes(image_sizes(ds.image_paths())),
        "grid": plots.sample_grid(ds, per_class=2),
        "curves": plots.learning_curves({"x": history}, "t"),
        "confusion": plots.confusion_matrices({"x": cm, "y": cm, "z": cm, "w": cm}),
        "paired": plots.paired_differences({"accuracy": paired_differences(cv, {"b": "a"})}, "t", highlight="b"),
        "captioned": plots.captioned_images(ds, {g: f"{g}: a caption" for g in guids}),
        "main": plots.main_ablation(cv, {"a": "model a", "b": "model b"}, "t", highlight="b"),
        "sizes_curve": plots.training_size_curve(cv.assign(train_rows=[10, 10, 20, 20]).replace({"b": "a"}), "t"),
        "internals": plots.fusion_internals(np.full((3, 3), 1 / 9), pd.DataFrame({"label": [0, 1, 2, 2],
                                            "text_share": [0.6, 0.5, 0.7, 0.8]}), "t"),
        "attention": plots.attention_examples(
            [Attention(guid, ["[CLS]", "a", "$x", "[SEP]"], np.full(4, 0.25), np.full((3, 3), 1 / 9)) for guid in guids],
            {g: ds.image(g, 32) for g in guids}, {guids[0]: "caption"}),
        "gallery": plots.error_gallery(ds, pd.DataFrame({"row": [0, 2], "true": ["neutral", "negative"], "predicted":
                                       ["positive", "positive"], "kind": ["other", "other"]}), np.full((12, 3), 1 / 3)),
    }
    for name, fig in figures.items():  # readable when opened: no text under 8 pt
        small = {t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_fontsize() < 8}
        assert not small, (name, small)
    for name, fig in figures.items():
        assert plots.save(fig, name, out) is None  # no path echoed into notebook outputs
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in figures)
    curve = figures["sizes_curve"].axes  # accuracy and macro-F1 against the training rows, one line per model
    assert len(curve) == 2 and [t.get_text() for t in curve[0].get_xticklabels()] == ["10", "20"]
    assert len(figures["attention"].axes) == 2 * len(guids) and figures["attention"].axes[0].get_title() == "caption"
    assert sum(ax.axison for ax in figures["gallery"].axes) == 2  # one panel per error, the rest blank
    assert [ax.get_title() for ax in figures["captioned"].axes if ax.images] == [f"{g}: a caption" for g in guids]
    boxes = figures["internals"].axes[1]  # the gate's share per true class: medians of classes 0, 1 and 2
    medians = [line.get_ydata()[0] for line in boxes.lines[4:15:5]]  # five lines a box, the median last
    assert medians == pytest.approx([0.6, 0.5, 0.75])
    grid = figures["confusion"].axes  # four matrices on a grid of at most three a row: 2 x 3, two panels blank
    assert len(grid) == 6 and sum(ax.axison for ax in grid) == 4
    plots.save_table(cv, "table", out)
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv", index_col=0), cv)


def test_figures_and_tables_are_written_only_in_the_folder_given(dataset_factory, tmp_path, monkeypatch):
    from PIL import Image

    fig = plots.class_balance(load_dataset(dataset_factory(n_train=3, n_test=1)))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    folder = tmp_path / "out" / "figures"  # not there yet: made on the way
    plots.save(fig, "balance", folder)
    first = (folder / "balance.png").read_bytes()
    plots.save(fig, "balance", folder)
    plots.save_table(pd.DataFrame({"a": [1]}), "table", folder)
    assert {p for p in tmp_path.rglob("*") if p.is_file()} - before == {folder / "balance.png", folder / "table.csv"}
    assert (folder / "balance.png").read_bytes() == first  # the same figure, the same bytes
    assert "Software" not in Image.open(folder / "balance.png").info  # no matplotlib version in the file


def test_the_class_balance_bars_count_each_class(dataset_factory):
    ds = load_dataset(dataset_factory(n_train=7, n_test=1, tags=["positive"] * 4 + ["neutral"] * 2 + ["negative"]))
    fig = plots.class_balance(ds)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [1, 2, 4]  # negative, neutral, positive
    assert "7 rows" in fig.axes[0].get_title()


# --------------------------------------------------------------------------- reproduce
def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    _notebook(root / "notebooks" / "01_ok.ipynb", "import json, os, sys\n"
              "print(json.dumps([os.environ['LAB5_DATA'], os.environ['LAB5_OUT'], sys.path[:3], os.getcwd()]))")
    _notebook(root / "notebooks" / "02_bad.ipynb", "x = 1", "raise ValueError('\\x1b[31mboom\\x1b[0m')")
    _notebook(root / "notebooks" / "03_more.ipynb", "print(3)")
    (root / "notebooks" / "helper.ipynb").write_text("{}")  # not numbered: never run
    return root


def test_notebook_paths_picks_the_numbered_notebooks_in_order(project):
    folder = project / "notebooks"
    assert [p.name for p in notebook_paths(folder)] == ["01_ok.ipynb", "02_bad.ipynb", "03_more.ipynb"]
    assert [p.name for p in notebook_paths(folder, "3,1")] == ["01_ok.ipynb", "03_more.ipynb"]
    assert [p.name for p in notebook_paths(folder, " 02 ")] == ["02_bad.ipynb"]


@pytest.mark.parametrize("only, message", [("7", "--only: no notebook numbered '7'; choose from 01, 02, 03"),
                                           ("1,x", "no notebook numbered 'x'"), (",", "--only ',' names no notebook")])
def test_an_unknown_notebook_number_is_a_config_error(project, only, message):
    with pytest.raises(ConfigError) as e:
        notebook_paths(project / "notebooks", only)
    assert message in str(e.value)


def test_a_folder_without_numbered_notebooks_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no numbered notebooks in"):
        notebook_paths(tmp_path)


def test_reproduce_runs_notebooks_in_order_in_place_and_names_the_failing_cell(project, tmp_path):
    data = tmp_path / "data"
    paths = notebook_paths(project / "notebooks")
    committed_bad, committed_more = (project / "notebooks" / "02_bad.ipynb").read_bytes(), paths[2].read_bytes()
    with pytest.raises(NotebookFailed) as e:
        run_notebooks(project, data, project, paths)
    assert str(e.value) == "02_bad.ipynb: cell 1 failed: ValueError: boom"  # one line, no colour codes
    executed = nbformat.read(project / "notebooks" / "01_ok.ipynb", as_version=4)  # written back in place
    env_data, env_out, path, cwd = json.loads(executed.cells[0].outputs[0]["text"])
    assert (env_data, env_out) == (str(data.resolve()), str(project.resolve()))
    assert str(project.resolve()) in path and cwd == str((project / "notebooks").resolve())
    assert (project / "notebooks" / "02_bad.ipynb").read_bytes() == committed_bad  # a failed notebook is not written
    assert paths[2].read_bytes() == committed_more  # and the run stops there
    assert not [p.name for p in (project / "notebooks").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_rerun_that_reproduces_every_output_leaves_the_notebook_byte_for_byte(project, tmp_path):
    paths = notebook_paths(project / "notebooks", "3")
    run_notebooks(project, tmp_path / "data", project, paths)
    first = paths[0].read_bytes()
    assert b"iopub" not in first and b"execute_reply" not in first  # no execution timestamps recorded
    run_notebooks(project, tmp_path / "data", project, paths)
    assert paths[0].read_bytes() == first


def test_reproduce_for_another_output_root_writes_executed_notebooks_there(project, tmp_path):
    before = {p.name: p.read_bytes() for p in (project / "notebooks").iterdir()}
    out = tmp_path / "elsewhere"
    times = run_notebooks(project, tmp_path / "data", out, notebook_paths(project / "notebooks", "1,3"))
    assert [name for name, _ in times] == ["01_ok.ipynb", "03_more.ipynb"] and all(t >= 0 for _, t in times)
    assert {p.name: p.read_bytes() for p in (project / "notebooks").iterdir()} == before  # the project's are untouched
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["01_ok.ipynb", "03_more.ipynb"]
    executed = nbformat.read(out / "notebooks" / "01_ok.ipynb", as_version=4)
    assert json.loads(executed.cells[0].outputs[0]["text"])[1] == str(out.resolve())
    assert nbformat.read(out / "notebooks" / "03_more.ipynb", as_version=4).cells[0].outputs[0]["text"] == "3\n"


def test_strip_ansi_removes_terminal_colour_codes():
    assert strip_ansi("\x1b[0;31mValueError\x1b[0m: \x1b[1mboom\x1b[?25h") == "ValueError: boom"
    assert strip_ansi("plain [1] text") == "plain [1] text"


def test_cells_tagged_course_data_are_committed_without_output_but_shown_elsewhere(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = root / "notebooks" / "01_data.ipynb"
    _notebook(path, "print('a tweet')", "print('a summary')")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].metadata["tags"] = [COURSE_DATA_TAG]
    nbformat.write(nb, path)
    run_notebooks(root, tmp_path / "data", tmp_path / "out", [path])  # another output root: shown
    shown = nbformat.read(tmp_path / "out" / "notebooks" / "01_data.ipynb", as_version=4)
    assert shown.cells[0].outputs[0]["text"] == "a tweet\n"
    run_notebooks(root, tmp_path / "data", root, [path])  # the project itself: committed without it
    committed = nbformat.read(path, as_version=4)
    assert committed.cells[0].outputs == [] and committed.cells[1].outputs[0]["text"] == "a summary\n"


def test_text_the_font_cannot_draw_becomes_squares_without_a_warning_per_glyph(dataset_factory, recwarn):
    from lab5.plots.style import _drawable

    assert _drawable("真的 costs $5") == "\u25a1\u25a1 costs \\$5"  # Chinese: squares; $ is not maths
    ds = load_dataset(dataset_factory(n_train=12, n_test=3))
    ds.train.loc[:, "text"] = "真的很好 #joy"
    errors = pd.DataFrame({"row": [0], "true": ["neutral"], "predicted": ["positive"], "kind": ["other"]})
    fig = plots.error_gallery(ds, errors, np.full((12, 3), 1 / 3))
    fig.canvas.draw()
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
    assert "\u25a1\u25a1\u25a1\u25a1 #joy" in fig.axes[0].get_xlabel()


def test_a_profiled_run_records_each_notebook_and_hands_the_file_to_its_kernels(project, tmp_path):
    from lab5 import profile

    nb = project / "notebooks" / "04_env.ipynb"
    _notebook(nb, "import os\nfrom lab5 import profile\nwith profile.stage('cv inside the kernel'):\n    pass\n"
                  "print(os.environ[profile.ENV])")
    target = tmp_path / "p.jsonl"
    run_notebooks(project, tmp_path / "data", tmp_path / "out", [nb], profile_to=target)
    rows = profile.read(target)
    assert list(rows.stage) == ["cv inside the kernel", "notebook 04_env"]
    executed = nbformat.read(tmp_path / "out" / "notebooks" / "04_env.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == str(target.resolve())


def test_consecutive_prints_to_one_stream_are_one_output_however_the_kernel_flushed_them(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = root / "notebooks" / "01_prints.ipynb"
    _notebook(path, "import sys\nprint('a', flush=True); print('b', flush=True); print('w', file=sys.stderr, flush=True); "
                    "print('c')", "print('a\\nb')")
    run_notebooks(root, tmp_path / "data", root, [path])
    nb = nbformat.read(path, as_version=4)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "a\nb\n"), ("stderr", "w\n"), ("stdout", "c\n")]
    assert nb.cells[0].outputs[0].text == nb.cells[1].outputs[0].text  # split or not, the same bytes
