"""Figures of one trained model (notebooks 2, 3, 4 and 6)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.transforms import offset_copy
import numpy as np
import pandas as pd
import seaborn as sns

from ..data import LABELS, Dataset
from .style import CLASS_COLOURS, _drawable, _model_colour, _panels, _wrap


def learning_curves(histories: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Per epoch: training and validation loss (left), validation macro-F1 (right); y-axes start at 0."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4 + 0.18 * len(histories)))  # room for a legend row a run
    colours = {name: _model_colour(name, k) for k, name in enumerate(histories)}
    for name, h in histories.items():
        a.plot(h.epoch, h.train_loss, color=colours[name], label=name)
        if "val_loss" in h:
            a.plot(h.epoch, h.val_loss, "--", color=colours[name], label=f"{name}, validation")
            b.plot(h.epoch, h.val_macro_f1, marker="o", color=colours[name], label=name)
    a.set(title="loss (solid: train, dashed: validation)", xlabel="epoch", ylabel="cross-entropy", ylim=(0, None))
    b.set(title="validation macro-F1", xlabel="epoch", ylabel="macro-F1", ylim=(0, 1))
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
        handles, labels = ax.get_legend_handles_labels()
        keep = [k for k, label in enumerate(labels) if not label.endswith(", validation")]  # one entry a model
        if keep:
            ax.legend([handles[k] for k in keep], [labels[k] for k in keep], fontsize=8, loc="upper center",
                      bbox_to_anchor=(0.5, 0), ncol=3,
                      bbox_transform=offset_copy(ax.transAxes, fig, y=-32, units="points"))  # under the x-label
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(matrices: dict[str, pd.DataFrame], title: str = "", columns: int = 3) -> plt.Figure:
    """Row-normalised confusion matrices on a grid of at most ``columns`` per row, counts and shares annotated."""
    fig, axes = _panels(len(matrices), min(len(matrices), columns), 3.4, 3.3)
    for ax, (name, cm) in zip(axes, matrices.items()):
        norm = cm.div(cm.sum(1).clip(lower=1), axis=0)
        sns.heatmap(norm, annot=cm.astype(str) + "\n" + norm.map("{:.0%}".format), fmt="", cmap="Blues", vmin=0, vmax=1,
                    cbar=False, square=True, annot_kws={"fontsize": 8}, ax=ax)
        ax.tick_params(labelsize=8, labelrotation=0)
        ax.set(title=name, xlabel="predicted", ylabel="true")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def fusion_internals(region_mean: np.ndarray, gate: pd.DataFrame, title: str) -> plt.Figure:
    """Left: mean token attention over image regions (scale 0 to twice uniform). Right: the gate's text
    share per true class.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.8, 3.4), gridspec_kw={"width_ratios": [1, 1.5]})
    uniform = 1 / region_mean.size
    im = a.imshow(region_mean, cmap="RdBu_r", vmin=0, vmax=2 * uniform)
    for (r, c), v in np.ndenumerate(region_mean):
        a.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=8)
    a.set_xticks([]), a.set_yticks([])
    a.set_title(f"cross-attention over image regions\n(mean weight; uniform = 1/{region_mean.size} = {uniform:.3f})",
                fontsize=9)
    bar = fig.colorbar(im, ax=a, fraction=0.046)
    bar.set_label(f"mean weight (0 to 2/{region_mean.size}; weights span {region_mean.min():.3f}–{region_mean.max():.3f})",
                  fontsize=8)
    bar.set_ticks([0, uniform, 2 * uniform], labels=["0", f"1/{region_mean.size}", f"2/{region_mean.size}"])
    bar.ax.tick_params(labelsize=8)
    data = [gate.loc[gate.label == k, "text_share"] for k in range(len(LABELS))]
    parts = b.boxplot(data, tick_labels=LABELS, patch_artist=True, whis=(0, 100), showfliers=False,  # min to max
                      medianprops={"color": "black"})
    for patch, c in zip(parts["boxes"], LABELS):
        patch.set_facecolor(CLASS_COLOURS[c])
        patch.set_alpha(0.5)
    b.axhline(0.5, color="grey", lw=0.8, ls="--")
    b.set(ylabel="gate: share from the text", xlabel="true class",
          title="gated fusion: text against image\n(box: quartiles; whiskers: smallest to largest row)")
    b.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(w_pad=3)  # the colour bar's label clear of the right panel's axis label
    return fig


def attention_examples(maps: list, images: dict, labels: dict[str, str]) -> plt.Figure:
    """Cross-attention of a few pairs, one row each: attention over the image, and over the tokens.

    It shows course images: save it to the figures folder, never commit it.
    """
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


def error_gallery(ds: Dataset, rows: pd.DataFrame, probs: np.ndarray, columns: int = 4) -> plt.Figure:
    """Errors of a model, one panel each, with image, tweet and probabilities. Never commit it (course data)."""
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

