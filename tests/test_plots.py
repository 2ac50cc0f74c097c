"""lab5.plots on tiny synthetic inputs: the palettes, legends that describe their own panel, score axes from 0 to 1,
difference axes that follow the bulk of the data and mark what they clip, whiskers that say what they span, histogram
bins of whole pixels, and the main ablation fold by fold."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from lab5 import plots
from lab5.plots import style
from lab5.data import LABELS


def _hex(colour) -> str:
    return matplotlib.colors.to_hex(colour).lower()


# --------------------------------------------------------------------------- palettes
def test_one_palette_for_classes_and_one_for_series_that_shares_no_colour_with_it():
    classes = {_hex(c) for c in plots.CLASS_COLOURS.values()}
    series = {_hex(c) for c in plots.SERIES_COLOURS}
    assert list(plots.CLASS_COLOURS) == list(LABELS) and len(classes) == 3
    assert len(series) == len(plots.SERIES_COLOURS) and not classes & series
    models = [_hex(c) for c in [*plots.MODEL_COLOURS.values(), plots.FINAL_COLOUR]]
    assert len(set(models)) == len(models) and set(models) <= series  # one colour a model, none a class colour


def test_colours_are_written_only_where_the_palettes_are_defined():
    folder = Path(plots.__file__).parent
    palettes = (folder / "style.py").read_text().splitlines()
    first_def = next(i for i, line in enumerate(palettes) if line.startswith("def "))
    others = [line for p in sorted(folder.glob("*.py")) if p.name != "style.py" for line in p.read_text().splitlines()]
    assert len(others) > 100  # the figure modules were read
    assert not [line for line in palettes[first_def:] + others if re.search(r"#[0-9a-fA-F]{6}\b", line)]


# --------------------------------------------------------------------------- learning curves
def _history(train_loss, val_loss, f1) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, len(f1) + 1), "train_loss": train_loss, "val_loss": val_loss,
                         "val_macro_f1": f1})


HEADS = {"concat": _history([0.8, 0.6, 0.5], [0.62, 0.6, 0.61], [0.62, 0.63, 0.63]),
         "cross_attention": _history([0.8, 0.55, 0.4], [0.66, 0.62, 0.63], [0.62, 0.67, 0.66]),
         "reference_gate": _history([0.96, 0.85, 0.8], [0.89, 0.8, 0.79], [0.25, 0.25, 0.25]),
         "gated": _history([0.8, 0.57, 0.46], [0.62, 0.61, 0.62], [0.61, 0.65, 0.65])}


def _labelled(ax) -> list:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_each_learning_curve_panel_has_one_legend_entry_a_model_in_its_colour():
    for histories in (HEADS, {"text": HEADS["concat"]}):
        fig = plots.learning_curves(histories, "t")
        for ax in fig.axes:
            legend = ax.get_legend()
            assert legend is not None
            shown = [(t.get_text(), _hex(h.get_color())) for t, h in zip(legend.get_texts(), legend.legend_handles)]
            drawn = [(line.get_label(), _hex(line.get_color())) for line in _labelled(ax)
                     if not line.get_label().endswith(", validation")]
            assert shown == drawn and [name for name, _ in shown] == list(histories)  # one entry a model
        loss, f1 = fig.axes
        styles = {line.get_label(): line.get_linestyle() for line in _labelled(loss)}
        assert all(styles[m] == "-" and styles[f"{m}, validation"] == "--" for m in histories)  # both lines drawn
        assert "solid: train" in loss.get_title() and "dashed: validation" in loss.get_title()


def test_learning_curves_draw_macro_f1_from_0_to_1_and_the_loss_from_0_with_every_curve_inside():
    fig = plots.learning_curves(HEADS, "t")
    loss, f1 = fig.axes
    assert f1.get_ylim() == (0, 1)  # a few points of macro-F1 look like a few points, not like the whole panel
    assert loss.get_ylim()[0] == 0 and loss.get_ylim()[1] >= 0.96
    gate = next(line for line in _labelled(f1) if line.get_label() == "reference_gate")
    assert list(gate.get_ydata()) == [0.25, 0.25, 0.25]  # far below the others, and still inside the axis
    assert not f1.texts and not loss.texts


def test_the_bulk_sets_aside_only_a_span_far_from_the_rest():
    assert style._bulk([(0.25, 0.25), (0.6, 0.63), (0.62, 0.67), (0.61, 0.65)]) == (0.6, 0.67)
    assert style._bulk([(0.6, 0.63), (0.62, 0.67), (0.61, 0.65), (0.9, 0.95)]) == (0.6, 0.67)  # above, too
    assert style._bulk([(0.5, 0.55), (0.6, 0.63), (0.62, 0.67)]) == (0.5, 0.67)  # a gap narrower than the rest
    assert style._bulk([(0.25, 0.25), (0.6, 0.65)]) == (0.25, 0.65)  # two curves: no bulk to speak of
    assert style._bulk([(0.1, 0.1), (0.6, 0.6), (0.6, 0.6)]) == (0.1, 0.6)  # a flat rest: nothing to zoom into
    points = [(v, v) for v in (-0.28, -0.09, -0.05, 0.0, 0.02, 0.06)]
    assert style._bulk(points) == (-0.09, 0.06)


# --------------------------------------------------------------------------- paired differences
def _diffs(rows: dict[str, tuple[float, float, float]], control: str = "text") -> pd.DataFrame:
    """A :func:`lab5.ablation.paired_differences` table (fractions) from ``{model: (mean, min, max)}``."""
    return pd.DataFrame([{"model": m, "control": control, "mean": a, "min": lo, "max": hi, "better_folds": int(a > 0),
                          "folds": 5} for m, (a, lo, hi) in rows.items()]).set_index("model")


PAIRED = {"accuracy": _diffs({"image": (-0.074, -0.084, -0.064), "concat": (0.016, 0.003, 0.031),
                              "reference_gate": (-0.033, -0.095, -0.009), "late": (0.019, 0.008, 0.028),
                              "final": (0.006, 0.001, 0.011)}),
          "macro_f1": _diffs({"image": (-0.068, -0.091, -0.050), "concat": (0.043, 0.026, 0.060),
                              "reference_gate": (-0.138, -0.281, -0.0875), "late": (0.013, 0.002, 0.029),
                              "final": (0.008, -0.005, 0.022)})}


def test_paired_differences_label_their_axes_in_points_and_clip_only_the_outlier():
    fig = plots.paired_differences(PAIRED, "t", highlight="final")
    accuracy, f1 = fig.axes
    assert accuracy.get_xlabel() == "accuracy difference (points)"
    assert f1.get_xlabel() == "macro-F1 difference (points)"
    fig.canvas.draw()
    for ax in fig.axes:  # fractions drawn as whole points
        ticks = [(t.get_position()[0], t.get_text()) for t in ax.get_xticklabels()]
        assert ticks and all(text == f"{round(100 * v):+d}" for v, text in ticks)
        assert all(abs(100 * v - round(100 * v)) < 1e-6 for v, _ in ticks)
    left, right = f1.get_xlim()
    assert -0.12 < left < -0.091 and right > 0.06  # the -28 of one fold no longer sets the scale; the image's -9 inside
    assert accuracy.get_xlim()[0] < -0.095  # nothing far apart on accuracy: every fold inside
    edge = [line for line in f1.get_lines() if line.get_marker() == "<"]
    assert len(edge) == 1 and list(edge[0].get_xdata()) == [left] and not edge[0].get_clip_on()
    assert "mean -13.8, min -28.1" in [t.get_text() for t in f1.texts]
    assert not [line for line in accuracy.get_lines() if line.get_marker() in ("<", ">")]
    dots = f1.collections[1]  # the means drawn inside the axis: all but the clipped one
    assert len(dots.get_offsets()) == 4
    final = [_hex(c) for c in f1.collections[0].get_colors()][-1]
    assert final == _hex(plots.FINAL_COLOUR)


def test_paired_differences_draw_groups_under_headers():
    groups = {"single models": ["image", "reference_gate"], "fusions": ["concat", "late"]}
    fig = plots.paired_differences(PAIRED, groups=groups)
    labels = fig.axes[0].get_yticklabels()
    assert [t.get_text() for t in labels] == ["single models", "image  (vs text)", "reference_gate  (vs text)",
                                              "fusions", "concat  (vs text)", "late  (vs text)", "other",
                                              "final  (vs text)"]
    assert [t.get_text() for t in labels if t.get_fontweight() == "bold"] == ["single models", "fusions", "other"]
    ungrouped = plots.paired_differences(PAIRED)
    assert [t.get_text().split()[0] for t in ungrouped.axes[0].get_yticklabels()] == list(PAIRED["accuracy"].index)


def test_paired_differences_name_the_highlighted_model_final_in_its_row_and_as_a_control():
    table = {"accuracy": pd.concat([_diffs({"ensemble": (0.006, 0.001, 0.011), "concat": (0.016, 0.003, 0.031)}),
                                    _diffs({"offsets": (0.002, -0.007, 0.01)}, control="ensemble")])}
    fig = plots.paired_differences(table, highlight="ensemble")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["final: ensemble  (vs text)", "concat  (vs text)",
                                                                     "offsets  (vs final)"]
    assert "in colour: the final model" in fig.texts[0].get_text()
    plain = plots.paired_differences(table)  # nothing highlighted: the names as they are
    names = [t.get_text() for t in plain.axes[0].get_yticklabels()]
    assert names[::2] == ["ensemble  (vs text)", "offsets  (vs ensemble)"]


# --------------------------------------------------------------------------- fusion internals
def test_fusion_internals_colour_the_weights_from_zero_to_twice_uniform_so_a_near_uniform_map_looks_pale():
    region = np.full((3, 3), 1 / 9) + np.array([[-2, -2, -1], [-1, -1, 0], [2, 2, 3]]) * 1e-3
    gate = pd.DataFrame({"label": [0, 1, 2, 2], "text_share": [0.6, 0.5, 0.7, 0.8]})
    fig = plots.fusion_internals(region, gate, "t")
    heat, _, bar = fig.axes
    image = heat.images[0]
    np.testing.assert_allclose(image.get_array(), region)
    assert image.get_clim() == pytest.approx((0, 2 / 9))  # uniform is the middle of the scale, whatever the data
    assert image.get_cmap().name == "RdBu_r"
    assert "2/9" in bar.get_ylabel() and "0.109–0.114" in bar.get_ylabel()  # the scale and what the data span
    assert "0.114" in [t.get_text() for t in heat.texts]  # each cell prints its weight
    middle = image.norm(1 / 9)
    assert all(abs(image.norm(v) - middle) < 0.02 for v in region.flat)  # a near-uniform map reads as near-uniform


# --------------------------------------------------------------------------- per-class F1, training-set size
CV = pd.DataFrame({"model": ["a", "a", "b", "b", "c", "c"], "fold": [0, 1] * 3,
                   "f1_negative": [0.5, 0.7, 0.4, 0.4, 0.9, 0.9], "f1_neutral": [0.1, 0.3, 0.0, 0.2, 0.5, 0.5],
                   "f1_positive": [0.7, 0.8, 0.6, 0.9, 0.9, 0.9]})


def test_training_size_curve_says_its_whiskers_span_the_fold_min_to_max():
    curve = pd.DataFrame({"model": ["text"] * 4 + ["final"] * 4, "train_rows": [10, 10, 20, 20] * 2,
                          "fold": [0, 1] * 4, "accuracy": [0.5, 0.6, 0.6, 0.8, 0.6, 0.7, 0.7, 0.9],
                          "macro_f1": [0.3, 0.4, 0.4, 0.6, 0.4, 0.5, 0.5, 0.7]})
    fig = plots.training_size_curve(curve, "t")
    legend = fig.axes[1].get_legend()
    assert legend.get_title().get_text() == "line: mean over 2 folds\nwhisker: fold min–max"
    accuracy = fig.axes[0].containers[0]  # what is drawn: text's whisker at 20 rows from 0.6 to 0.8
    assert sorted(accuracy[2][0].get_segments()[1][:, 1]) == pytest.approx([0.6, 0.8])
    assert [ax.get_ylim() for ax in fig.axes] == [(0, 1), (0, 1)]  # the gain over training rows at its true size


def test_a_figure_or_table_save_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    import lab5.cache

    plots.save_table(pd.DataFrame({"a": [1]}), "t", tmp_path)
    fig, _ = plt.subplots()
    plots.save(fig, "f", tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lab5.cache.os, "replace", crash)
    for write in (lambda: plots.save_table(pd.DataFrame({"a": [2]}), "t", tmp_path), lambda: plots.save(fig, "f", tmp_path)):
        with pytest.raises(KeyboardInterrupt):
            write()
    plt.close(fig)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the old files, whole; no .tmp left


def test_the_gates_whiskers_reach_the_smallest_and_the_largest_row():
    gate = pd.DataFrame({"label": [0] * 5 + [1] * 2 + [2] * 2, "text_share": [0.1, 0.5, 0.52, 0.54, 0.9, 0.4, 0.6, 0.3, 0.7]})
    boxes = plots.fusion_internals(np.full((3, 3), 1 / 9), gate, "t").axes[1]
    whiskers = [line.get_ydata()[1] for line in boxes.lines[0:2]]  # class 0: lower and upper whisker ends
    assert whiskers == pytest.approx([0.1, 0.9])  # 0.1 and 0.9 lie beyond 1.5 IQR, still inside the whiskers


def test_paired_differences_set_aside_far_out_folds_on_both_sides_at_once():
    small = {f"change {k}": (0.002 * k - 0.01, 0.002 * k - 0.03, 0.002 * k + 0.01) for k in range(12)}
    table = {"image": (-0.068, -0.091, -0.05), **small, "reference_gate": (-0.138, -0.281, -0.0875),
             "gate, longer": (0.127, -0.011, 0.348)}
    f1 = plots.paired_differences({"macro_f1": _diffs(table)}).axes[0]
    left, right = f1.get_xlim()
    assert -0.12 < left < -0.091 and 0.03 < right < 0.1  # neither -28 nor +35 sets the scale; the image's -9 inside
    beyond = {line.get_marker() for line in f1.get_lines() if line.get_marker() in ("<", ">")}
    assert beyond == {"<", ">"}
    texts = [t.get_text() for t in f1.texts]
    assert "mean +12.7, max +34.8; better on 1/5" in texts and "mean -13.8, min -28.1" in texts
    # every other row's folds' count is written after its best fold, inside the axis; none beyond its right edge
    counts = [t for t in f1.texts if t.get_text().endswith("/5") and "better" not in t.get_text()]
    assert len(counts) == len(table) - 1 and all(t.xy[0] <= right for t in counts)


# --------------------------------------------------------------------------- image sizes, the main ablation
def test_image_sizes_count_whole_pixel_bins_that_each_hold_data_on_axes_spanning_only_the_data():
    rng = np.random.default_rng(0)
    width = np.where(rng.random(400) < 0.5, 600, rng.integers(48, 600, 400))  # half exactly 600 wide, as on Twitter
    height = rng.integers(60, 1200, 400)
    width[0], height[:2] = 48, (60, 1199)  # the smallest and the largest sides
    fig = plots.image_sizes(pd.DataFrame({"width": width, "height": height}))
    scatter, hist = fig.axes
    assert scatter.get_xlim() == (0, 650) and scatter.get_ylim() == (50, 1200)  # the 50-pixel bins around the data
    assert hist.get_xlim() == (0, 1200)
    for patch, values in zip(hist.patches, (width, height)):  # one outline a side
        counts, edges = np.histogram(values, bins=np.unique(patch.get_path().vertices[:, 0]))
        assert np.all(np.diff(edges) == 50) and np.all(edges % 50 == 0)  # whole pixels, 50 in each bin: no comb
        assert values.min() - 50 < edges[0] <= values.min() and values.max() <= edges[-1] <= values.max() + 50
        assert counts.all()  # no bin empty
        assert counts.sum() == len(values)
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["width", "height"]
    one = plots.image_sizes(pd.DataFrame({"width": [32, 32], "height": [32, 32]}))  # a single size: one bin
    assert one.axes[0].get_xlim() == (0, 50) and one.axes[1].get_xlim() == (0, 50)


def test_main_ablation_draws_each_fold_and_the_mean_of_each_model_on_axes_from_0_to_1():
    rng = np.random.default_rng(1)
    models = ["text", "image", "concat", "cross_attention", "ensemble"]
    cv = pd.DataFrame([{"model": m, "fold": f, "accuracy": 0.6 + 0.02 * k + 0.01 * rng.random(),
                        "macro_f1": 0.5 + 0.02 * k + 0.01 * rng.random()}
                       for k, m in enumerate(models) for f in range(5)])
    cv = pd.concat([cv, cv.assign(model="not shown")])
    rows = {"text": "text only", "image": "image only", "concat": "concat", "cross_attention": "cross-attention",
            "ensemble": "final model"}
    before = np.random.get_state()
    fig = plots.main_ablation(cv, rows, "t", highlight="ensemble")
    assert all(np.array_equal(a, b) for a, b in zip(before, np.random.get_state()))  # no random jitter: same bytes
    fig.canvas.draw()  # the category names become tick labels when drawn
    assert [ax.get_title() for ax in fig.axes] == ["accuracy", "macro-F1"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(rows.values())  # shared by both panels
    for ax, metric in zip(fig.axes, ("accuracy", "macro_f1")):
        assert ax.get_xlim() == (0, 1)
        *folds, means = ax.collections
        for y, (model, dots) in enumerate(zip(rows, folds)):  # one dot a fold, on the model's row
            assert sorted(dots.get_offsets()[:, 0]) == pytest.approx(sorted(cv[cv.model == model][metric]))
            assert np.abs(dots.get_offsets()[:, 1] - y).max() < 0.5
        expected = [cv[cv.model == m][metric].mean() for m in rows]
        assert list(means.get_offsets()[:, 0]) == pytest.approx(expected)
        assert [t.get_text() for t in ax.texts] == [f"{v:.3f}" for v in expected]  # each mean written
        colours = [_hex(dots.get_facecolor()[0]) for dots in folds]
        assert colours[0] == _hex(plots.MODEL_COLOURS["text"]) and colours[-1] == _hex(plots.FINAL_COLOUR)
    assert "5 folds" in fig.texts[0].get_text()
