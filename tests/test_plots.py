"""lab5.plots on tiny synthetic inputs: the palettes, legends that describe their own panel, axes that follow the bulk
of the data and mark what they clip, and whiskers that say what they span."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd

from lab5 import plots
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
    source = Path(plots.__file__).read_text().splitlines()
    first_def = next(i for i, line in enumerate(source) if line.startswith("def "))
    assert not [line for line in source[first_def:] if re.search(r"#[0-9a-fA-F]{6}\b", line)]


def test_label_distribution_colours_its_series_with_no_class_colour():
    shares = pd.DataFrame({"prior": [0.3, 0.1, 0.6], "OOF": [0.28, 0.05, 0.67], "test": [0.31, 0.05, 0.64]},
                          index=LABELS)
    ax = plots.label_distribution(shares, "t").axes[0]
    colours = {_hex(bar.get_facecolor()) for bar in ax.patches}
    assert len(colours) == 3 and not colours & {_hex(c) for c in plots.CLASS_COLOURS.values()}
