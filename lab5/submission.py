"""The predictions file: ``guid,tag`` lines in the test file's order, checked before anything is written; how it
compares with another predictions file and with the class shares of the labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data import LABELS, TEST_FILE, guid_key, parse_labels
from .errors import DataError
from .cache import atomic_write_bytes


def format_predictions(test: pd.DataFrame, predicted: dict[str, str]) -> str:
    """``guid,tag`` lines in the order of the test file, ``null`` replaced by the predicted tag.

    Checked: every test guid predicted, nothing else, only valid tags.
    """
    missing = [g for g in test.guid if g not in predicted]
    extra = sorted(set(predicted) - set(test.guid), key=guid_key)
    bad = [(g, t) for g, t in predicted.items() if t not in LABELS]
    if missing or extra or bad:
        raise DataError(f"predictions do not match {TEST_FILE}: {len(missing)} guids missing (e.g. {missing[:3]}), "
                        f"{len(extra)} unknown (e.g. {extra[:3]}), {len(bad)} invalid tags (e.g. {bad[:3]})")
    return "guid,tag\n" + "".join(f"{g},{predicted[g]}\n" for g in test.guid)


def write_predictions(test: pd.DataFrame, predicted: dict[str, str], out: Path) -> Path:
    """Write the predictions file atomically: an old file is replaced only by a complete one that parses back
    to the test file's guids, in order."""
    text = format_predictions(test, predicted)
    back = parse_labels(text, out)
    if list(back.guid) != list(test.guid):
        raise DataError(f"{out}: the formatted predictions do not parse back to the test guids; nothing written")
    atomic_write_bytes(Path(out), text.encode("utf-8"))
    return Path(out)


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions file as a frame (``guid``, ``tag``), checked like a labels file."""
    return parse_labels(Path(path).read_text(encoding="utf-8-sig"), path)[["guid", "tag"]]


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> float | None:
    """Share of rows where two prediction frames agree, or None when they do not list the same guids in order."""
    if list(a.guid) != list(b.guid):
        return None
    return float((a.tag.to_numpy() == b.tag.to_numpy()).mean()) if len(a) else 1.0


def agreeing_rows(a: pd.DataFrame, b: pd.DataFrame) -> int | None:
    """How many rows two prediction frames give the same tag, or None when they do not list the same guids in
    order (:func:`agreement` is this count over the number of rows)."""
    if list(a.guid) != list(b.guid):
        return None
    return int((a.tag.to_numpy() == b.tag.to_numpy()).sum())


def class_shares(columns: dict[str, object]) -> pd.DataFrame:
    """Each column's share of every class, side by side: ``columns`` maps a name to labels, given as tags
    (``"positive"``) or as label ids (0, 1, 2 in :data:`LABELS` order). Rows are :data:`LABELS` (a class a column
    never has is 0); each column is named with its row count, e.g. ``"test predictions, n=511"``."""
    out = {}
    for name, labels in columns.items():
        values = pd.Series(np.asarray(labels))
        if pd.api.types.is_integer_dtype(values):
            values = values.map(dict(enumerate(LABELS)))
        unknown = sorted(set(values) - set(LABELS), key=str)
        if unknown:
            raise DataError(f"class_shares: column {name!r} holds labels that are no class: {unknown[:3]}")
        out[f"{name}, n={len(values)}"] = values.value_counts(normalize=True).reindex(list(LABELS), fill_value=0.0)
    return pd.DataFrame(out).rename_axis("class")
