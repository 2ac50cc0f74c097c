"""The predictions file: ``guid,tag`` lines in the test file's order, checked before anything is written."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .data import LABELS, TEST_FILE, guid_key, parse_labels
from .errors import DataError
from .cache import atomic_write_bytes


def format_predictions(test: pd.DataFrame, predicted: dict[str, str]) -> str:
    """``guid,tag`` lines in the test file's order, checked: every test guid, nothing else, valid tags."""
    missing = [g for g in test.guid if g not in predicted]
    extra = sorted(set(predicted) - set(test.guid), key=guid_key)
    bad = [(g, t) for g, t in predicted.items() if t not in LABELS]
    if missing or extra or bad:
        raise DataError(f"predictions do not match {TEST_FILE}: {len(missing)} guids missing (e.g. {missing[:3]}), "
                        f"{len(extra)} unknown (e.g. {extra[:3]}), {len(bad)} invalid tags (e.g. {bad[:3]})")
    return "guid,tag\n" + "".join(f"{g},{predicted[g]}\n" for g in test.guid)


def write_predictions(test: pd.DataFrame, predicted: dict[str, str], out: Path) -> Path:
    """Write the predictions file atomically, only once it parses back to the test file's guids."""
    text = format_predictions(test, predicted)
    back = parse_labels(text, out)
    if list(back.guid) != list(test.guid):
        raise DataError(f"{out}: the formatted predictions do not parse back to the test guids; nothing written")
    atomic_write_bytes(Path(out), text.encode("utf-8"))
    return Path(out)
