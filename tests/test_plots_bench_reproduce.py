"""lab5.plots (every report figure is written), lab5.bench (the table and the ratio) and lab5.reproduce (failures
name the notebook and the cell)."""
from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd
import pytest

from lab5 import load_dataset, plots
from lab5.data import LABELS, image_sizes, text_stats

from conftest import small_config


def test_every_report_figure_and_table_is_written_under_its_name(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=12, n_test=3))
    out = tmp_path / "figs"
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.9], "val_macro_f1": [0.3, 0.5]})
    cm = pd.DataFrame(np.eye(3, dtype=int), index=LABELS, columns=LABELS)
    cv = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "accuracy": [0.6, 0.7, 0.5, 0.5],
                       "macro_f1": [0.4, 0.5, 0.3, 0.35]})
    figures = {
        "balance": plots.class_balance(ds),
        "lengths": plots.text_lengths(text_stats(ds.train)),
        "sizes": plots.image_sizes(image_sizes(ds)),
        "grid": plots.sample_grid(ds, per_class=2),
        "curves": plots.learning_curves({"x": history}, "t"),
        "confusion": plots.confusion_matrices({"x": cm, "y": cm}),
        "bars": plots.metric_bars(cv),
    }
    for name, fig in figures.items():
        assert plots.save(fig, name, folder=out) is None  # no path echoed into notebook outputs
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plots.save_table(cv, "table", folder=out)
    assert pd.read_csv(out / "table.csv", index_col=0).shape == cv.shape


def test_text_stats_counts_hashtags_mentions_urls_and_retweets():
    frame = pd.DataFrame({"guid": ["1"], "tag": ["positive"], "encoding": ["utf-8"],
                          "text": ["RT @a: so #happy #sun http://x.y/z"]})
    row = text_stats(frame).iloc[0]
    assert (row.hashtags, row.mentions, row.urls, row.retweet, row.words) == (2, 1, 1, 1, 6)


def test_bench_prints_every_measurement_and_the_speedup_of_the_cache(dataset_factory, tmp_path, patched_encoders):
    from lab5.bench import run_bench

    root = dataset_factory(n_train=24, n_test=3)
    table = run_bench(small_config(tmp_path, data=root), cold_pairs=6, naive_pairs=8, models=["text", "concat"])
    for needle in ("features, cold", "features, warm", "train from cache", "predict", "naive: re-encode every pair",
                   "speed-up of the cache", "peak RSS"):
        assert needle in table
    speedup = float(table.split("speed-up of the cache")[1].split()[0].rstrip("x"))
    assert speedup > 0


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_reproduce_runs_notebooks_in_order_and_names_the_failing_cell(tmp_path, monkeypatch):
    import lab5.reproduce as R

    monkeypatch.setattr(R, "NOTEBOOKS", tmp_path)
    _notebook(tmp_path / "01_ok.ipynb", "print(1 + 1)")
    _notebook(tmp_path / "02_bad.ipynb", "x = 1", "raise ValueError('boom')")
    assert [p.name for p in R.notebook_paths("1")] == ["01_ok.ipynb"]
    with pytest.raises(R.NotebookFailed, match=r"02_bad.ipynb: cell 1 failed: .*boom"):
        R.run_notebooks(tmp_path)
    executed = nbformat.read(tmp_path / "01_ok.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "2\n"  # written back in place, with its output


def test_reproduce_with_no_matching_notebook_is_a_config_error(tmp_path, monkeypatch):
    import lab5.reproduce as R
    from lab5.config import ConfigError

    monkeypatch.setattr(R, "NOTEBOOKS", tmp_path)
    with pytest.raises(ConfigError):
        R.notebook_paths("7")
