"""Report figures and tables, each saved under a stable name in a figures folder the caller gives
(:attr:`lab5.outputs.Outputs.figures`)."""
from __future__ import annotations

import functools
import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy
import numpy as np
import pandas as pd

from . import profile
from .data import LABELS, Dataset
from .io import atomic_write_bytes

# The two palettes, the only colours in this module. Classes: Okabe & Ito's colour-blind-safe vermillion and blue with a
# grey between them; models and other series: Paul Tol's "muted" set, colour-blind safe, none of it a class colour.
#: one colour per class, the same in every figure
CLASS_COLOURS = {"negative": "#D55E00", "neutral": "#888888", "positive": "#0072B2"}
#: colours of series that are not classes (models, columns of a table), in the order they are handed out
SERIES_COLOURS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"]
#: one colour per model, the same in every figure (taken from :data:`SERIES_COLOURS`)
MODEL_COLOURS = {"text": "#117733", "image": "#999933", "concat": "#44AA99", "cross_attention": "#CC6677",
                 "reference_gate": "#DDCC77", "gated": "#332288", "late": "#882255"}
#: the final model, wherever it is drawn among others
FINAL_COLOUR = "#AA4499"
#: rows or marks that stand for no series in particular
PLAIN_COLOUR = "#444444"


def save(fig: plt.Figure, name: str, folder: Path) -> None:
    """Save ``fig`` as ``{folder}/{name}.png`` (150 dpi, no software metadata).

    Returns nothing, so a notebook cell ending in ``save(...)`` shows the figure and no machine-specific path.
    A figure made of course images or tweets is shown in a cell tagged ``course-data``, which the committed notebook
    keeps without output (:func:`lab5.reproduce.drop_course_data`); its file is git-ignored.
    """
    with profile.stage(f"plots {name}"):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
        atomic_write_bytes(folder / f"{name}.png", buf.getvalue())


def save_table(df: pd.DataFrame, name: str, folder: Path) -> None:
    """Save a report table as ``{folder}/{name}.csv`` (atomically, like every file lab5 writes)."""
    atomic_write_bytes(folder / f"{name}.csv", df.to_csv().encode())


def class_balance(ds: Dataset) -> plt.Figure:
    counts = ds.train.tag.value_counts().reindex(LABELS).fillna(0)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(counts.index, counts.values, color=[CLASS_COLOURS[c] for c in counts.index])
    for i, v in enumerate(counts.values):
        ax.text(i, v, f"{int(v)}\n{v / counts.sum():.1%}", ha="center", va="bottom", fontsize=8)
    ax.set(title=f"Class balance of train.txt ({int(counts.sum())} rows)", ylabel="pairs", ylim=(0, counts.max() * 1.25))
    return fig


def text_lengths(stats: pd.DataFrame) -> plt.Figure:
    """Distribution of words per tweet by class (outlined, so the three classes stay readable where they overlap);
    ``stats`` from :func:`lab5.text.text_stats`."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.arange(0, stats.words.max() + 2)
    for c in LABELS:
        ax.hist(stats.loc[stats.tag == c, "words"], bins=bins, histtype="step", lw=1.6, label=c, color=CLASS_COLOURS[c],
                density=True)
    ax.set(title=f"Words per tweet by class (train.txt, n={len(stats)})", xlabel="words per tweet", ylabel="share of the class")
    ax.legend()
    return fig


def image_sizes(sizes: pd.DataFrame) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.scatter(sizes.width, sizes.height, s=3, alpha=0.3, color=SERIES_COLOURS[0])
    a.set(title=f"Image sizes (n={len(sizes)})", xlabel="width (pixels)", ylabel="height (pixels)")
    b.hist(sizes.width / sizes.height, bins=40, color=SERIES_COLOURS[0])
    b.set(title="Aspect ratio", xlabel="width / height", ylabel="images")
    fig.tight_layout()
    return fig


def sample_grid(ds: Dataset, per_class: int = 4, seed: int = 0) -> plt.Figure:
    """A few random pairs per class: the image with the start of its tweet."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(LABELS), per_class, figsize=(2.6 * per_class, 3.0 * len(LABELS)))
    for r, c in enumerate(LABELS):
        rows = ds.train[ds.train.tag == c]
        for k, i in enumerate(rng.choice(len(rows), size=per_class, replace=False)):
            guid, text = rows.guid.iloc[i], rows.text.iloc[i]
            ax = axes[r, k]
            ax.imshow(ds.image(guid, 160))
            ax.set_xticks([]), ax.set_yticks([])
            short = (text[:60] + "…") if len(text) > 60 else text
            ax.set_title(f"{c} · {guid}\n{_wrap(short, 32)}", fontsize=8, color=CLASS_COLOURS[c])
    fig.tight_layout()
    return fig


def _panels(n: int, columns: int, width: float, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """A grid of ``columns`` panels a row for ``n`` panels of ``width`` x ``height`` inches; the panels of the last
    row left over are blank. Returns the figure and its first ``n`` axes."""
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def captioned_images(ds: Dataset, captions: dict[str, str], columns: int = 3) -> plt.Figure:
    """The images of some pairs, each under its caption (``captions``: guid -> caption). It shows course images:
    save it to the figures folder, never commit it."""
    fig, axes = _panels(len(captions), columns, 3.0, 3.2)
    for ax, (guid, caption) in zip(axes, captions.items()):
        ax.imshow(ds.image(guid, 200))
        ax.axis("off")
        ax.set_title(caption, fontsize=9)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int, lines: int = 2) -> str:
    """The first ``lines`` lines of ``text`` wrapped at ``width``, drawable (see :func:`_drawable`)."""
    return "\n".join(textwrap.wrap(_drawable(text), width)[:lines])


@functools.cache
def _font_chars() -> frozenset[int]:
    from matplotlib import font_manager

    return frozenset(font_manager.get_font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def _drawable(text: str) -> str:
    """``text`` as matplotlib can draw it: ``$`` escaped (not maths), and a character the font lacks (Chinese, most
    emoji) shown as a white square instead of a warning per glyph."""
    chars = _font_chars()
    return "".join(c if ord(c) in chars or c.isspace() else "\u25a1" for c in text).replace("$", r"\$")


def _model_colour(name: str, k: int) -> str:
    """The colour of model ``name`` (:data:`MODEL_COLOURS`), else the ``k``-th of :data:`SERIES_COLOURS`."""
    return MODEL_COLOURS.get(name, SERIES_COLOURS[k % len(SERIES_COLOURS)])


def _bulk(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """The range of the ``spans`` (low, high) left when a span lying apart from all the others is set aside: one below
    (or above) the rest by a gap wider than the rest's own range, from either end in turn, as long as more than half
    of the spans and at least two remain. A flat rest (no range) sets nothing aside."""
    keep, least = sorted(spans), max(2, len(spans) // 2 + 1)
    for below in (True, False):
        while len(keep) > least:
            order = range(len(keep))
            k = min(order, key=lambda i: keep[i][1]) if below else max(order, key=lambda i: keep[i][0])
            rest = keep[:k] + keep[k + 1:]
            lo, hi = min(s[0] for s in rest), max(s[1] for s in rest)
            gap = lo - keep[k][1] if below else keep[k][0] - hi
            if not hi > lo or gap <= hi - lo:
                break
            keep = rest
    return min(s[0] for s in keep), max(s[1] for s in keep)


def _follow_bulk(ax: plt.Axes) -> None:
    """Set ``ax``'s y-limits to the bulk of its labelled lines (:func:`_bulk`); a line left outside stays drawn, its
    points marked by triangles on the edge it lies beyond, and a note on the axes gives its name and its range."""
    lines = [line for line in ax.get_lines()
             if not line.get_label().startswith("_") and np.isfinite(np.asarray(line.get_ydata(), float)).any()]
    if not lines:
        return
    spans = [(float(np.nanmin(line.get_ydata())), float(np.nanmax(line.get_ydata()))) for line in lines]
    lo, hi = _bulk(spans)
    outside = [(line, s) for line, s in zip(lines, spans) if s[1] < lo or s[0] > hi]
    if not outside:
        return
    pad = 0.08 * (hi - lo)
    below, above = any(s[1] < lo for _, s in outside), any(s[0] > hi for _, s in outside)
    ax.set_ylim(lo - pad * (1 + 2 * below), hi + pad * (1 + 2 * above))
    edge_lo, edge_hi = ax.get_ylim()
    for k, (line, (a, b)) in enumerate(outside):
        low = b < lo
        x = line.get_xdata()
        ax.plot(x, np.full(len(x), edge_lo if low else edge_hi), "v" if low else "^", color=line.get_color(),
                clip_on=False, ms=6, label="_clipped")
        at = f"at {a:.2f}" if f"{a:.2f}" == f"{b:.2f}" else f"from {a:.2f} to {b:.2f}"
        ax.annotate(f"{'▼' if low else '▲'} {line.get_label()} {at}, {'below' if low else 'above'} the axis",
                    (0.02, 0.03 + 0.08 * k if low else 0.97 - 0.08 * k), xycoords="axes fraction",
                    va="bottom" if low else "top", fontsize=8, color=PLAIN_COLOUR)


def learning_curves(histories: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Per epoch, for one or more runs: training loss (solid) and validation loss (dashed) on the left, validation
    macro-F1 on the right; one colour per model (:data:`MODEL_COLOURS`), each panel's legend under it. The y-axes
    follow the bulk of the curves (:func:`_follow_bulk`): a curve far from the others is marked on the edge."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4 + 0.18 * len(histories)))  # room for a legend row a run
    colours = {name: _model_colour(name, k) for k, name in enumerate(histories)}
    for name, h in histories.items():
        a.plot(h.epoch, h.train_loss, color=colours[name], label=f"{name}, train")
    for name, h in histories.items():  # after every train line: the legend's second column
        if "val_loss" in h:
            a.plot(h.epoch, h.val_loss, "--", color=colours[name], label=f"{name}, validation")
            b.plot(h.epoch, h.val_macro_f1, marker="o", color=colours[name], label=name)
    a.set(title="loss (solid: train, dashed: validation)", xlabel="epoch", ylabel="cross-entropy")
    b.set(title="validation macro-F1", xlabel="epoch", ylabel="macro-F1")
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
        _follow_bulk(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2 if ax is a else 3,
                      bbox_transform=offset_copy(ax.transAxes, fig, y=-32, units="points"))  # under the x-label
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(matrices: dict[str, pd.DataFrame], title: str = "", columns: int = 3) -> plt.Figure:
    """Row-normalised confusion matrices on a grid of at most ``columns`` per row, counts and shares annotated."""
    fig, axes = _panels(len(matrices), min(len(matrices), columns), 3.4, 3.3)
    for ax, (name, cm) in zip(axes, matrices.items()):
        norm = cm.to_numpy() / np.maximum(1, cm.to_numpy().sum(1, keepdims=True))
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(LABELS)):
            for j in range(len(LABELS)):
                ax.text(j, i, f"{cm.iat[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(LABELS)), LABELS, fontsize=8)
        ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
        ax.set(title=name, xlabel="predicted", ylabel="true")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _fold_count(folds: pd.Series) -> str:
    """How many folds a mean is over, as words: "5 folds", or "2-5 folds" where the models had different counts."""
    lo, hi = int(folds.min()), int(folds.max())
    return f"{lo} folds" if lo == hi else f"{lo}-{hi} folds"


def per_class_f1(cv: pd.DataFrame, models: list[str], title: str) -> plt.Figure:
    """F1 of each class per model (rows of a per-fold CV table, one per (model, fold)): the dot is the mean over the
    folds, the whisker spans the fold minimum to maximum; the three classes of a model side by side on its row."""
    columns = [f"f1_{c}" for c in LABELS]
    stats = cv[cv.model.isin(models)].groupby("model", sort=False)[columns].agg(["mean", "min", "max"]).loc[models]
    folds = _fold_count(cv[cv.model.isin(models)].groupby("model").size())
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(models) + 1.3))
    y = np.arange(len(models))[::-1]
    for k, c in enumerate(LABELS):
        s = stats[f"f1_{c}"]
        ax.errorbar(s["mean"], y + 0.2 * (1 - k), xerr=[s["mean"] - s["min"], s["max"] - s["mean"]], fmt="o", ms=5,
                    color=CLASS_COLOURS[c], capsize=2, lw=1.2, label=c)
    ax.set_yticks(y, models, fontsize=8)
    ax.set(xlabel=f"F1 (dot: mean over {folds}; whisker: fold min–max)", title=title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="class", title_fontsize=8)
    fig.tight_layout()
    return fig


#: how a metric column is named on an axis
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "weighted_f1": "weighted F1"}


def _grouped_rows(models: list[str], groups: dict[str, list[str]] | None) -> list[tuple[str, bool]]:
    """``(name, is_header)`` from the top row down: the models in ``groups``' order, each group under its name (the
    models in no group last, under "other"); without ``groups`` the models as they come, no headers."""
    if not groups:
        return [(m, False) for m in models]
    placed = {m for members in groups.values() for m in members}
    rest = [m for m in models if m not in placed]
    out = []
    for name, members in [*groups.items(), *([("other", rest)] if rest else [])]:
        members = [m for m in members if m in models]
        out += [(name, True), *((m, False) for m in members)] if members else []
    return out


def _mark_beyond(ax: plt.Axes, y: float, row: pd.Series, colour: str) -> None:
    """Mark the values of a paired-differences ``row`` (mean, min, max) beyond ``ax``'s x-limits: a triangle on the
    edge they lie beyond and their values, in points, written above the row."""
    for side, edge, end in ((-1, ax.get_xlim()[0], "min"), (1, ax.get_xlim()[1], "max")):
        beyond = [(k, row[k]) for k in ("mean", end) if (row[k] - edge) * side > 0]
        if not beyond:
            continue
        ax.plot([edge], [y], "<" if side < 0 else ">", color=colour, ms=7, clip_on=False, zorder=4)
        ax.annotate(", ".join(f"{k} {100 * v:+.1f}" for k, v in beyond), (edge, y), xytext=(-6 * side, 5),
                    textcoords="offset points", ha="left" if side < 0 else "right", va="bottom", fontsize=8,
                    color=colour)


def paired_differences(diffs: dict[str, pd.DataFrame], title: str = "", highlight: str | None = None,
                       groups: dict[str, list[str]] | None = None) -> plt.Figure:
    """Dot-and-whisker plot of per-fold paired differences (from :func:`lab5.evaluation.paired_differences`, in
    fractions; drawn in points), one panel per metric: the dot is the mean difference, the whisker spans the worst to
    the best fold, and the label says on how many folds the model beat its control. ``highlight`` draws one model (the
    final one) in colour; ``groups`` (name -> models) draws the models group by group under bold headers. Each axis
    follows the bulk of the folds (:func:`_bulk`): a value beyond it is marked by a triangle on the edge, written."""
    control = next(iter(diffs.values()))["control"]
    rows = _grouped_rows(list(control.index), groups)
    y = np.arange(len(rows))[::-1]
    fig, axes = plt.subplots(1, len(diffs), figsize=(4.4 * len(diffs) + 3.4, 0.32 * len(rows) + 1.6), sharey=True,
                             squeeze=False)
    for ax, (metric, d) in zip(axes[0], diffs.items()):
        ys = [yi for yi, (_, header) in zip(y, rows) if not header]
        d = d.loc[[m for m, header in rows if not header]]
        lo, hi = _bulk([(v, v) for v in [*d["min"], *d["max"], 0.0]])
        span = hi - lo or 0.01
        left, right = lo - 0.05 * span, hi + 0.12 * span  # room on the right for the folds' count
        ax.set_xlim(left, right)
        colours = [FINAL_COLOUR if m == highlight else PLAIN_COLOUR for m in d.index]
        ax.hlines(ys, d["min"], d["max"], color=colours, lw=1.5)
        inside = d["mean"].between(left, right).to_numpy()
        ax.scatter(d["mean"][inside], np.array(ys)[inside], color=np.array(colours)[inside], zorder=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        for yi, colour, (m, r) in zip(ys, colours, d.iterrows()):
            ax.annotate(f"{r.better_folds}/{r.folds}", (min(r["max"], right), yi), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8, annotation_clip=False)
            _mark_beyond(ax, yi, r, colour)
        for yi, (name, header) in zip(y, rows):
            if header:
                ax.axhline(yi, color="lightgrey", lw=0.8)
        ax.set_xlabel(f"{METRIC_NAMES.get(metric, metric.replace('_', '-'))} difference (points)")
        ax.xaxis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10]))  # whole points: 0.02 is +2, never 0.025
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:+.0f}"))
        ax.grid(axis="x", alpha=0.3)
    labels = [name if header else f"{name}  (vs {control[name]})" for name, header in rows]
    axes[0, 0].set_yticks(y, labels, fontsize=8)
    for label, (_, header) in zip(axes[0, 0].get_yticklabels(), rows):
        label.set_fontweight("bold" if header else "normal")
    fig.supxlabel("dot: mean over the folds (model − control); whisker: worst to best fold; n/k: folds the model did "
                  "better on; ◀ ▶: beyond the axis, value written", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tuning_trials(trials: pd.DataFrame, space: dict[str, tuple], title: str) -> plt.Figure:
    """One panel per searched value: every trial's mean CV accuracy (search folds) at its value of that parameter,
    the control (trial 0, the defaults) and the chosen trial (rank 1) marked; ``trials`` from
    :func:`lab5.tuning.search`."""
    fig, axes = _panels(len(space), 3, 3.3, 2.6)
    spread = np.linspace(-0.18, 0.18, len(trials))  # a fixed horizontal offset per trial, so equal values stay apart
    for ax, (name, values) in zip(axes, space.items()):
        x = trials[name].map({v: i for i, v in enumerate(values)}).to_numpy() + spread
        ax.scatter(x, trials.accuracy, s=14, color=SERIES_COLOURS[1], label="trial")
        for mask, colour, label in ((trials.trial == 0, PLAIN_COLOUR, "defaults"), (trials["rank"] == 1, FINAL_COLOUR, "chosen")):
            ax.scatter(x[mask.to_numpy()], trials.accuracy[mask], s=46, facecolors="none", edgecolors=colour, lw=1.6, label=label)
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set(xlabel=name.replace("_", " "), ylabel="CV accuracy")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper right", ncol=3, fontsize=7, bbox_to_anchor=(1, 0.96))
    return fig  # the legend above the panels hides no trial


def training_size_curve(curve: pd.DataFrame, title: str) -> plt.Figure:
    """Out-of-fold accuracy and macro-F1 against the number of training rows (from
    :func:`lab5.evaluation.learning_curve`), one colour per model (:data:`FINAL_COLOUR` for any other): the line joins
    the means over the folds, the whisker spans the fold minimum to maximum (the legend says so)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    stats = curve.groupby(["model", "train_rows"], sort=False)[["accuracy", "macro_f1"]].agg(["mean", "min", "max"])
    for model in curve.model.unique():
        s = stats.loc[model].sort_index()
        colour = MODEL_COLOURS.get(model, FINAL_COLOUR)
        for ax, metric in zip(axes, ("accuracy", "macro_f1")):
            m = s[metric]
            ax.errorbar(m.index, m["mean"], yerr=[m["mean"] - m["min"], m["max"] - m["mean"]], color=colour,
                        marker="o", capsize=3, label=model)
    for ax, metric in zip(axes, ("accuracy", "macro-F1")):
        ax.set_xscale("log", base=2)
        ticks = sorted(curve.train_rows.unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel="training rows (log scale)", ylabel=f"{metric}, out-of-fold", title=metric)
        ax.grid(alpha=0.3)
    folds = _fold_count(curve.groupby(["model", "train_rows"]).size())
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), title_fontsize=8,
                   title=f"line: mean over {folds}\nwhisker: fold min–max")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attention_examples(maps: list, images: dict, labels: dict[str, str]) -> plt.Figure:
    """Cross-attention of a few pairs (from :func:`lab5.explain.cross_attention`), one row each: the image the
    encoder saw with the tokens' attention over its regions laid over it (colours stretched from the pair's lowest to
    its highest region weight, both printed below), and the text's tokens shaded by the attention the image regions
    pay them. ``images``: guid -> the displayed crop; ``labels``: guid -> caption.
    It shows course images: save it to the figures folder, never commit it."""
    fig, axes = plt.subplots(len(maps), 2, figsize=(10, 2.6 * len(maps)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2.6]})
    for (a, b), m in zip(axes, maps):
        img = np.asarray(images[m.guid])
        a.imshow(img)
        lo, hi = float(m.region_weight.min()), float(m.region_weight.max())
        a.imshow(m.region_weight, cmap="magma", alpha=0.45, extent=(0, img.shape[1], img.shape[0], 0), vmin=lo, vmax=hi)
        a.set_xticks([]), a.set_yticks([])
        a.set_title(labels.get(m.guid, m.guid), fontsize=8)
        a.set_xlabel(f"region weights {lo:.3f} (dark) to {hi:.3f} (light)", fontsize=8)
        b.axis("off")
        w = m.token_weight / max(float(m.token_weight.max()), 1e-12)
        x, y = 0.0, 0.95
        for tok, wt in zip(m.tokens, w):
            label = _drawable(tok)
            width = 0.012 * len(label) + 0.012
            if x + width > 1:
                x, y = 0.0, y - 0.14
            b.text(x, y, label, fontsize=8, va="top", transform=b.transAxes,
                   bbox={"boxstyle": "square,pad=0.15", "facecolor": plt.cm.Reds(0.85 * wt), "edgecolor": "none"},
                   color="white" if wt > 0.6 else "black")
            x += width
    fig.suptitle("Cross-attention: tokens to image regions (left, 3x3 grid), image regions to tokens (right, darker = more)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def fusion_internals(region_mean: np.ndarray, gate: pd.DataFrame, title: str) -> plt.Figure:
    """Left: the tokens' attention over the image regions averaged over rows, coloured by its deviation from the
    uniform weight 1/regions (a diverging map centred at 0, symmetric limits; each cell also prints the weight).
    Right: the gated-fusion gate's share of the text, per true class (``gate``: columns label, the class index, and
    text_share)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.8, 3.4), gridspec_kw={"width_ratios": [1, 1.5]})
    uniform = 1 / region_mean.size
    dev = region_mean - uniform
    lim = max(float(np.abs(dev).max()), 1e-3)  # at least the printed precision: a flat map stays pale
    im = a.imshow(dev, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for (r, c), v in np.ndenumerate(region_mean):
        a.text(c, r, f"{v:.3f}\n{dev[r, c]:+.3f}", ha="center", va="center", fontsize=8,
               color="white" if abs(dev[r, c]) > 0.6 * lim else "black")
    a.set_xticks([]), a.set_yticks([])
    a.set_title(f"cross-attention over image regions\n(mean weight; uniform = 1/{region_mean.size} = {uniform:.3f})",
                fontsize=9)
    bar = fig.colorbar(im, ax=a, fraction=0.046)
    bar.set_label(f"mean weight − 1/{region_mean.size} (uniform)", fontsize=8)
    bar.set_ticks([-lim, 0, lim], labels=[f"{-lim:+.2g}", "0", f"{lim:+.2g}"])
    bar.ax.tick_params(labelsize=8)
    data = [gate.loc[gate.label == k, "text_share"] for k in range(len(LABELS))]
    parts = b.boxplot(data, tick_labels=LABELS, patch_artist=True, showfliers=False, medianprops={"color": "black"})
    for patch, c in zip(parts["boxes"], LABELS):
        patch.set_facecolor(CLASS_COLOURS[c])
        patch.set_alpha(0.5)
    b.axhline(0.5, color="grey", lw=0.8, ls="--")
    b.set(ylabel="gate: share from the text", xlabel="true class", title="gated fusion: text against image")
    b.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def error_gallery(ds: Dataset, rows: pd.DataFrame, probs: np.ndarray, columns: int = 4) -> plt.Figure:
    """Errors of a model, one panel each: the image, the start of the tweet, true and predicted class and the
    model's probabilities (``rows`` from :func:`lab5.explain.gallery_rows`, ``probs`` (N, 3) in ``ds.train`` order).
    It shows course data: save it to the figures folder, never commit it."""
    fig, axes = _panels(len(rows), columns, 3.1, 3.9)
    for ax, (_, e) in zip(axes, rows.iterrows()):
        guid, text = ds.train.guid.iloc[e.row], ds.train.text.iloc[e.row]
        ax.imshow(ds.image(guid, 200))
        ax.set_xticks([]), ax.set_yticks([])
        p = " ".join(f"{c[:3]} {v:.2f}" for c, v in zip(LABELS, probs[e.row]))
        short = (text[:110] + "…") if len(text) > 110 else text
        ax.set_title(f"{e.kind}\ntrue {e.true}, predicted {e.predicted}\n{p}", fontsize=8, color=CLASS_COLOURS[e.true])
        ax.set_xlabel(_wrap(short, 34, lines=3), fontsize=8)
    fig.tight_layout()
    return fig


def reliability(p: np.ndarray, y: np.ndarray, title: str, bins: int = 10) -> plt.Figure:
    """Reliability diagram: accuracy against confidence of the predicted class, in equal-width confidence bins
    (bar width shows the bin, the number on top its rows); the diagonal is perfect calibration."""
    from .decisions import calibration_bins, expected_calibration_error

    fig, ax = plt.subplots(figsize=(4.4, 4))
    for r in calibration_bins(p, y, bins).itertuples():
        ax.bar(r.lower, r.accuracy, width=1 / bins, align="edge", color=SERIES_COLOURS[0], edgecolor="white")
        ax.text(r.lower + 0.5 / bins, r.accuracy + 0.01, str(r.rows), ha="center", fontsize=8)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="confidence of the predicted class", ylabel="accuracy",
           title=f"{title}\nECE {expected_calibration_error(p, y, bins):.3f}")
    fig.tight_layout()
    return fig


def label_distribution(shares: pd.DataFrame, title: str) -> plt.Figure:
    """Class shares side by side (columns of ``shares``: e.g. training prior, OOF predictions, test predictions)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(LABELS))
    w = 0.8 / len(shares.columns)
    for k, col in enumerate(shares.columns):
        bars = ax.bar(x + k * w - 0.4 + w / 2, shares[col].reindex(LABELS), w, label=col,
                      color=SERIES_COLOURS[k % len(SERIES_COLOURS)])
        ax.bar_label(bars, fmt="{:.1%}", fontsize=8)
    ax.set_xticks(x, LABELS)
    ax.set(ylabel="share of rows", title=title, ylim=(0, float(shares.max().max()) * 1.2))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
