"""Figures that compare models over cross-validation folds (notebook 5)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

from .style import (FINAL_COLOUR, LABEL_BOX, MODEL_COLOURS, PLAIN_COLOUR, _bulk, _fold_count)


#: how a metric column is named on an axis
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "weighted_f1": "weighted F1"}


def _grouped_rows(models: list[str], groups: dict[str, list[str]] | None) -> list[tuple[str, bool]]:
    """``(name, is_header)`` from the top row down, group by group (ungrouped models last, under "other")."""
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
    """Mark a paired-differences ``row``'s values beyond ``ax``'s x-limits with a triangle and the value."""
    for side, edge, end in ((-1, ax.get_xlim()[0], "min"), (1, ax.get_xlim()[1], "max")):
        beyond = [(k, row[k]) for k in ("mean", end) if (row[k] - edge) * side > 0]
        if not beyond:
            continue
        ax.plot([edge], [y], "<" if side < 0 else ">", color=colour, ms=7, clip_on=False, zorder=4)
        count = f"; better on {row.better_folds}/{row.folds}" if side > 0 and row["max"] > edge else ""
        ax.annotate(", ".join(f"{k} {100 * v:+.1f}" for k, v in beyond) + count, (edge, y), xytext=(-6 * side, 5),
                    textcoords="offset points", ha="left" if side < 0 else "right", va="bottom", fontsize=8,
                    color=colour, bbox=LABEL_BOX)


def _axis_range(values: list[float], far: float = 5.0) -> tuple[float, float]:
    """The x-range of a paired-differences panel: the bulk of ``values`` and 0, far-out values set aside."""
    v = np.asarray(values, float)
    q1, q3 = np.percentile(v, [25, 75])
    inside = v[(v >= q1 - far * (q3 - q1)) & (v <= q3 + far * (q3 - q1))]
    return _bulk([(x, x) for x in [*inside, 0.0]])


def paired_differences(diffs: dict[str, pd.DataFrame], title: str = "", highlight: str | None = None,
                       groups: dict[str, list[str]] | None = None) -> plt.Figure:
    """Dot-and-whisker plot of per-fold paired differences (in points), one panel per metric.

    Dot: mean; whisker: worst to best fold; label: folds won. ``highlight`` draws the final model in colour.
    """
    control = next(iter(diffs.values()))["control"]
    rows = _grouped_rows(list(control.index), groups)
    y = np.arange(len(rows))[::-1]
    fig, axes = plt.subplots(1, len(diffs), figsize=(4.4 * len(diffs) + 3.4, 0.32 * len(rows) + 1.6), sharey=True,
                             squeeze=False)
    for ax, (metric, d) in zip(axes[0], diffs.items()):
        ys = [yi for yi, (_, header) in zip(y, rows) if not header]
        d = d.loc[[m for m, header in rows if not header]]
        lo, hi = _axis_range([*d["min"], *d["max"]])
        span = hi - lo or 0.01
        left, right = lo - 0.05 * span, hi + 0.12 * span  # room on the right for the folds' count
        ax.set_xlim(left, right)
        colours = [FINAL_COLOUR if m == highlight else PLAIN_COLOUR for m in d.index]
        ax.hlines(ys, d["min"], d["max"], color=colours, lw=1.5)
        inside = d["mean"].between(left, right).to_numpy()
        ax.scatter(d["mean"][inside], np.array(ys)[inside], color=np.array(colours)[inside], zorder=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        for yi, colour, (m, r) in zip(ys, colours, d.iterrows()):
            if r["max"] <= right:  # beyond the right edge, _mark_beyond writes the count
                ax.annotate(f"{r.better_folds}/{r.folds}", (r["max"], yi), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=8, annotation_clip=False, bbox=LABEL_BOX)
            _mark_beyond(ax, yi, r, colour)
        for yi, (name, header) in zip(y, rows):
            if header:
                ax.axhline(yi, color="lightgrey", lw=0.8)
        ax.set_xlabel(f"{METRIC_NAMES.get(metric, metric.replace('_', '-'))} difference (points)")
        ax.xaxis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10]))  # whole points: 0.02 is +2, never 0.025
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:+.0f}"))
        ax.grid(axis="x", alpha=0.3)
    final = {highlight: "final"}
    labels = [name if header else f"{'final: ' * (name == highlight)}{name}  (vs {final.get(c, c)})"
              for (name, header), c in zip(rows, control.reindex([name for name, _ in rows]))]
    axes[0, 0].set_yticks(y, labels, fontsize=8)
    for label, (_, header) in zip(axes[0, 0].get_yticklabels(), rows):
        label.set_fontweight("bold" if header else "normal")
    fig.supxlabel("dot: mean over the folds (model − control); whisker: worst to best fold; n/k: folds the model did "
                  "better on; ◀ ▶: beyond the axis, value written" + ("; in colour: the final model" if highlight else ""),
                  fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_size_curve(curve: pd.DataFrame, title: str) -> plt.Figure:
    """OOF accuracy and macro-F1 against training rows, one colour per model: fold means, min-max whiskers."""
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
        ax.set(xlabel="training rows (log scale)", ylabel=f"{metric}, out-of-fold", title=metric, ylim=(0, 1))
        ax.grid(alpha=0.3)
    folds = _fold_count(curve.groupby(["model", "train_rows"]).size())
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), title_fontsize=8,
                   title=f"line: mean over {folds}\nwhisker: fold min–max")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main_ablation(cv: pd.DataFrame, rows: dict[str, str], title: str, highlight: str | None = None) -> plt.Figure:
    """OOF accuracy and macro-F1 of the models of ``rows`` (``cv`` model -> label): a dot per fold, a bar at
    the mean; ``highlight`` (the final model) in :data:`FINAL_COLOUR`.
    """
    data = cv[cv.model.isin(rows)].assign(label=lambda d: d.model.map(rows))
    palette = {label: FINAL_COLOUR if m == highlight else MODEL_COLOURS.get(m, PLAIN_COLOUR)
               for m, label in rows.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.4 * len(rows) + 1.6), sharey=True)
    for ax, metric in zip(axes, ("accuracy", "macro_f1")):
        sns.swarmplot(data, x=metric, y="label", hue="label", order=list(palette), palette=palette, size=5, alpha=0.8,
                      legend=False, ax=ax)  # dots side by side where they would overlap; no random jitter
        stats = data.groupby("label")[metric].agg(["mean", "max"]).reindex(list(palette))
        ax.scatter(stats["mean"], range(len(stats)), marker="|", s=300, color="black", zorder=3)
        for y, (mean, best) in enumerate(stats.to_numpy()):
            ax.annotate(f"{mean:.3f}", (best, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set(xlim=(0, 1), xlabel=f"{METRIC_NAMES[metric]}, out-of-fold", ylabel="", title=METRIC_NAMES[metric])
        ax.grid(axis="x", alpha=0.3)
    fig.supxlabel(f"dot: one of {_fold_count(data.groupby('model').size())}; bar: their mean (written)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
