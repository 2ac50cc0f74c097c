"""Palettes (the only colours of :mod:`lab5.plots`), saving, and helpers the figure modules share."""
from __future__ import annotations

import functools
import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .. import profile
from ..cache import atomic_write_bytes


# Colour-blind-safe palettes: Okabe & Ito's for classes, Paul Tol's "muted" set for models and other series.
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

#: the box behind a label written over lines (grid, zero line): the axes' white, no edge
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "pad": 0.6}


def save(fig: plt.Figure, name: str, folder: Path) -> None:
    """Save ``fig`` as ``{folder}/{name}.png`` (150 dpi, no software metadata).

    Returns nothing, so a notebook cell ending in ``save(...)`` shows no machine-specific path.
    """
    with profile.stage(f"plots {name}"):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
        atomic_write_bytes(folder / f"{name}.png", buf.getvalue())


def save_table(df: pd.DataFrame, name: str, folder: Path) -> None:
    """Save a report table as ``{folder}/{name}.csv`` (atomically, like every file lab5 writes)."""
    atomic_write_bytes(folder / f"{name}.csv", df.to_csv().encode())


def _panels(n: int, columns: int, width: float, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """A grid of ``columns`` panels a row for ``n`` panels; returns the figure and its first ``n`` axes."""
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _wrap(text: str, width: int, lines: int = 2) -> str:
    """The first ``lines`` lines of ``text`` wrapped at ``width``, drawable (see :func:`_drawable`)."""
    return "\n".join(textwrap.wrap(_drawable(text), width)[:lines])


@functools.cache
def _font_chars() -> frozenset[int]:
    from matplotlib import font_manager

    return frozenset(font_manager.get_font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def _drawable(text: str) -> str:
    """``text`` as matplotlib can draw it: ``$`` escaped, glyphs the font lacks as a white square."""
    chars = _font_chars()
    return "".join(c if ord(c) in chars or c.isspace() else "\u25a1" for c in text).replace("$", r"\$")


def _model_colour(name: str, k: int) -> str:
    """The colour of model ``name`` (:data:`MODEL_COLOURS`), else the ``k``-th of :data:`SERIES_COLOURS`."""
    return MODEL_COLOURS.get(name, SERIES_COLOURS[k % len(SERIES_COLOURS)])


def _bulk(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """The range of ``spans`` left when spans lying apart from the rest (by more than its range) are set aside."""
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


def _fold_count(folds: pd.Series) -> str:
    """How many folds a mean is over, as words: "5 folds", or "2-5 folds" where the models had different counts."""
    lo, hi = int(folds.min()), int(folds.max())
    return f"{lo} folds" if lo == hi else f"{lo}-{hi} folds"
