"""Report figures and tables, each saved under a stable name in a figures folder the caller gives
(:attr:`lab5.outputs.Outputs.figures`)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import LABELS, Dataset

CLASS_COLOURS = {"negative": "#c0392b", "neutral": "#7f8c8d", "positive": "#27ae60"}


def save(fig: plt.Figure, name: str, folder: Path, close: bool = False) -> None:
    """Save ``fig`` as ``{folder}/{name}.png`` (150 dpi, no software metadata).

    Returns nothing, so a notebook cell ending in ``save(...)`` shows the figure and no machine-specific path.
    ``close=True`` keeps it out of the notebook (for figures made of the course images, which are never committed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    if close:
        plt.close(fig)


def save_table(df: pd.DataFrame, name: str, folder: Path) -> None:
    """Save a report table as ``{folder}/{name}.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / f"{name}.csv")


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
    a.scatter(sizes.width, sizes.height, s=3, alpha=0.3)
    a.set(title=f"Image sizes (n={len(sizes)})", xlabel="width (pixels)", ylabel="height (pixels)")
    b.hist(sizes.width / sizes.height, bins=40)
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
            ax.set_title(f"{c} · {guid}\n{_wrap(short, 32)}", fontsize=7, color=CLASS_COLOURS[c])
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text.replace("$", r"\$"), width)[:2])


#: one colour per model, the same in every figure
MODEL_COLOURS = {"text": "#1f77b4", "image": "#ff7f0e", "concat": "#2ca02c", "cross_attention": "#d62728",
                 "reference_gate": "#9467bd", "gated": "#8c564b", "late": "#e377c2"}


def learning_curves(histories: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Per epoch, for one or more runs: training loss (solid) and validation loss (dashed) on the left, validation
    macro-F1 on the right; one colour per model (:data:`MODEL_COLOURS`), the legend beside the panels."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, h in histories.items():
        colour = MODEL_COLOURS.get(name)
        a.plot(h.epoch, h.train_loss, color=colour, label=f"{name}, train")
        if "val_loss" in h:
            a.plot(h.epoch, h.val_loss, "--", color=colour, label=f"{name}, validation")
            b.plot(h.epoch, h.val_macro_f1, marker="o", color=colour, label=name)
    a.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    b.set(title="validation macro-F1", xlabel="epoch", ylabel="macro-F1")
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
    b.legend(*a.get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(matrices: dict[str, pd.DataFrame], title: str = "", columns: int = 3) -> plt.Figure:
    """Row-normalised confusion matrices on a grid of at most ``columns`` per row, counts and shares annotated."""
    n = len(matrices)
    rows, cols = -(-n // columns), min(n, columns)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, cm) in zip(axes.flat, matrices.items()):
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


def per_class_f1(cv: pd.DataFrame, models: list[str], title: str) -> plt.Figure:
    """Mean F1 of each class over the folds, per model (rows of a per-fold CV table), on a zoomed axis."""
    f1 = cv.groupby("model", sort=False)[[f"f1_{c}" for c in LABELS]].mean().loc[models]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(models) + 1.3))
    y = np.arange(len(models))[::-1]
    for c in LABELS:
        ax.scatter(f1[f"f1_{c}"], y, color=CLASS_COLOURS[c], label=c, s=30)
    ax.set_yticks(y, models, fontsize=8)
    ax.set(xlabel="F1 (mean over 5 folds)", title=title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def paired_differences(diffs: dict[str, pd.DataFrame], title: str = "", highlight: str | None = None) -> plt.Figure:
    """Dot-and-whisker plot of per-fold paired differences (from :func:`lab5.evaluation.paired_differences`), one
    panel per metric: the dot is the mean difference, the whisker spans the worst to the best fold, and the label
    says on how many folds the model beat its control. ``highlight`` draws one model (the final one) in colour."""
    rows = len(next(iter(diffs.values())))
    fig, axes = plt.subplots(1, len(diffs), figsize=(4.4 * len(diffs) + 3.4, 0.32 * rows + 1.3), sharey=True, squeeze=False)
    for ax, (metric, d) in zip(axes[0], diffs.items()):
        y = np.arange(len(d))[::-1]
        colours = ["#c0392b" if m == highlight else "#34495e" for m in d.index]
        ax.hlines(y, d["min"], d["max"], color=colours, lw=1.5)
        ax.scatter(d["mean"], y, color=colours, zorder=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        for yi, (m, r) in zip(y, d.iterrows()):
            ax.annotate(f"{r.better_folds}/{r.folds}", (r["max"], yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.set_yticks(y, [f"{m}  (vs {r.control})" for m, r in d.iterrows()], fontsize=8)
        ax.set_xlabel(f"{metric.replace('_', '-')}: difference (points)")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:+.0f}"))
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def reliability(p: np.ndarray, y: np.ndarray, title: str, bins: int = 10) -> plt.Figure:
    """Reliability diagram: accuracy against confidence of the predicted class, in equal-width confidence bins
    (bar width shows the bin, the number on top its rows); the diagonal is perfect calibration."""
    from .decisions import calibration_bins, expected_calibration_error

    fig, ax = plt.subplots(figsize=(4.4, 4))
    for r in calibration_bins(p, y, bins).itertuples():
        ax.bar(r.lower, r.accuracy, width=1 / bins, align="edge", color="#5d8aa8", edgecolor="white")
        ax.text(r.lower + 0.5 / bins, r.accuracy + 0.01, str(r.rows), ha="center", fontsize=7)
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
        bars = ax.bar(x + k * w - 0.4 + w / 2, shares[col].reindex(LABELS), w, label=col)
        ax.bar_label(bars, fmt="{:.1%}", fontsize=7)
    ax.set_xticks(x, LABELS)
    ax.set(ylabel="share of rows", title=title, ylim=(0, float(shares.max().max()) * 1.2))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
