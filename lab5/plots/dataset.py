"""Figures of the dataset itself (notebooks 1 and 3): class balance, text lengths, image sizes, sample pairs."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..data import LABELS, Dataset
from .style import CLASS_COLOURS, SERIES_COLOURS, _panels, _wrap


def class_balance(ds: Dataset) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.countplot(ds.train, x="tag", hue="tag", order=LABELS, hue_order=LABELS, palette=CLASS_COLOURS, saturation=1, ax=ax)
    n = len(ds.train)
    for bars in ax.containers:
        ax.bar_label(bars, [f"{int(b.get_height())}\n{b.get_height() / n:.1%}" for b in bars], fontsize=8)
    ax.set(title=f"Class balance of train.txt ({n} rows)", xlabel="", ylabel="pairs", ylim=(0, ax.get_ylim()[1] * 1.2))
    return fig


def text_lengths(stats: pd.DataFrame) -> plt.Figure:
    """Distribution of words per tweet by class, outlined; ``stats`` from :func:`text_stats`."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(stats, x="words", hue="tag", hue_order=LABELS, palette=CLASS_COLOURS, discrete=True, element="step",
                 fill=False, stat="density", common_norm=False, lw=1.6, ax=ax)
    sns.move_legend(ax, "upper right", title=None)
    ax.set(title=f"Words per tweet by class (train.txt, n={len(stats)})", xlabel="words per tweet", ylabel="share of the class")
    return fig


def image_sizes(sizes: pd.DataFrame, step: int = 50) -> plt.Figure:
    """Width against height of each image, and histograms of each in whole-pixel bins of ``step``."""
    edges = {side: np.arange(sizes[side].min() // step * step, sizes[side].max() // step * step + step + 1, step)
             for side in ("width", "height")}
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.scatter(sizes.width, sizes.height, s=3, alpha=0.3, color=SERIES_COLOURS[0])
    a.set(title=f"Image sizes (n={len(sizes)})", xlabel="width (pixels)", ylabel="height (pixels)",
          xlim=edges["width"][[0, -1]], ylim=edges["height"][[0, -1]])
    for side, colour in zip(edges, SERIES_COLOURS[::2]):
        b.hist(sizes[side], bins=edges[side], histtype="step", lw=1.6, color=colour, label=side)
    b.set(title=f"Widths and heights ({step}-pixel bins)", xlabel="pixels", ylabel="images")
    b.margins(x=0)  # the axis spans the bins
    b.legend(fontsize=8)
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


def captioned_images(ds: Dataset, captions: dict[str, str], columns: int = 3) -> plt.Figure:
    """The images of some pairs under their captions. It shows course images: never commit it."""
    fig, axes = _panels(len(captions), columns, 3.0, 3.2)
    for ax, (guid, caption) in zip(axes, captions.items()):
        ax.imshow(ds.image(guid, 200))
        ax.axis("off")
        ax.set_title(caption, fontsize=9)
    fig.tight_layout()
    return fig


_PATTERNS = {
    "hashtags": r"#\w+",
    "mentions": r"@\w+",
    "urls": r"https?://\S+",
    "retweet": r"^RT\b",
}


def text_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per tweet: words, characters, hashtags, mentions, URLs, emoji, whether it is a retweet."""
    import emoji

    out = pd.DataFrame({"guid": frame.guid, "tag": frame.tag, "encoding": frame.encoding})
    out["words"] = frame.text.str.split().str.len()
    out["chars"] = frame.text.str.len()
    for name, pat in _PATTERNS.items():
        out[name] = frame.text.str.count(pat)
    out["emoji"] = [emoji.emoji_count(t) for t in frame.text]
    return out
