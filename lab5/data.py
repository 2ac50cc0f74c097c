"""The dataset: labels files, the folder of pairs, and its fingerprints; every user mistake is a
:class:`DataError` naming the file and guid, and nothing is dropped silently.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from .config import default_data_dir
from .errors import DataError, Problems
from .images import load_image
from .text import DecodedText, read_text

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Class names by id: negative 0, neutral 1, positive 2 (the reference report's mapping)."""
LABEL2ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
TRAIN_FILE = "train.txt"
TEST_FILE = "test_without_label.txt"


def guid_key(guid: str):
    """Sort key: numeric guids in numeric order, then the others."""
    return (0, int(guid), "") if guid.isdigit() else (1, 0, guid)


# --------------------------------------------------------------------------- labels files
def parse_labels(text: str, path: Path | str, *, test: bool = False) -> pd.DataFrame:
    """Parse a ``guid,tag`` file into columns ``guid``, ``tag`` and ``label`` (-1 for test).

    Tolerates CRLF, blank lines and padded or upper-case values; a :class:`DataError` names file, line and guid.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows or [c.strip().lower() for c in rows[0]] != ["guid", "tag"]:
        found = f"first line is {','.join(rows[0])!r}" if rows else "the file is empty"
        raise DataError(f"{path}: missing header 'guid,tag' ({found})")
    problems = Problems()
    seen: dict[str, int] = {}
    guids, tags = [], []
    allowed = ("null",) if test else LABELS
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip():
            problems.add("malformed lines", f"{path}:{lineno}: malformed line {','.join(row)!r} (expected guid,tag)")
            continue
        guid, tag = row[0].strip(), row[1].strip().lower()
        if guid in seen:
            problems.add("duplicate guids", f"{path}:{lineno}: guid {guid}: duplicate (first on line {seen[guid]})")
            continue
        seen[guid] = lineno
        if tag not in allowed:
            expected = "null" if test else "positive, neutral or negative"
            problems.add("unknown tags", f"{path}:{lineno}: guid {guid}: unknown tag {row[1].strip()!r} (expected {expected})")
            continue
        guids.append(guid)
        tags.append(tag)
    problems.raise_if_any()
    return pd.DataFrame({"guid": guids, "tag": tags, "label": [LABEL2ID.get(t, -1) for t in tags]})


def read_labels(path: Path, *, test: bool = False) -> pd.DataFrame:
    """Read a ``guid,tag`` file (a UTF-8 BOM allowed); see :func:`parse_labels`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    return parse_labels(text, path, test=test)


# --------------------------------------------------------------------------- the dataset
@dataclass
class Dataset:
    """A validated dataset folder: ``train`` and ``test`` frames with decoded texts; images load lazily."""

    root: Path
    train: pd.DataFrame
    test: pd.DataFrame
    empty_texts: list[str]
    unlisted: int  # pairs in data/ that are in neither labels file

    def text_path(self, guid: str) -> Path:
        return self.root / "data" / f"{guid}.txt"

    def image_path(self, guid: str) -> Path:
        return self.root / "data" / f"{guid}.jpg"

    def image_paths(self, guids=None) -> dict[str, Path]:
        """guid -> image path, for ``guids`` or every listed pair."""
        return {g: self.image_path(g) for g in (self.all.guid if guids is None else guids)}

    def image(self, guid: str, min_side: int | None = None) -> Image.Image:
        return load_image(self.image_path(guid), guid, min_side)

    def rows(self, guids, *, labelled: bool = False) -> pd.DataFrame:
        """The rows of ``guids``, in order, from :attr:`all` or (``labelled``) ``train`` alone."""
        return (self.train if labelled else self.all).set_index("guid").loc[list(guids)]

    @functools.cached_property
    def memo(self) -> dict:
        """What has been computed from this dataset as loaded, kept for the life of the object."""
        return {}

    @functools.cached_property
    def all(self) -> pd.DataFrame:
        """Train then test rows, in file order: the order every feature cache uses (built once)."""
        return pd.concat([self.train.assign(split="train"), self.test.assign(split="test")], ignore_index=True)

    def encodings(self) -> Counter:
        return Counter(self.all["encoding"])

    @functools.cached_property
    def labels_fingerprint(self) -> str:
        """Identity of the labelled rows, independent of BOM, line endings and row order (names the split)."""
        lines = sorted(f"{g},{t}" for g, t in zip(self.train.guid, self.train.tag))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identity of the whole task: the labelled rows and the test guids in their order (names output folders)."""
        blob = self.labels_fingerprint + "\n" + "\n".join(self.test.guid)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def utf8_ignore_changes(ds: Dataset) -> int:
    """How many texts would read differently decoded as UTF-8 with ``errors='ignore'`` (a BOM aside)."""
    changed = 0
    for guid, text in zip(ds.all.guid, ds.all.text):
        path = ds.text_path(guid)
        if path.is_file():
            changed += path.read_bytes().decode("utf-8", errors="ignore").lstrip("\ufeff").strip() != text
    return changed


def resolve_data_dir(path: Path | str | None) -> Path:
    """The data folder: the given path, else ``LAB5_DATA``, else ``./data``; a wrong one raises a one-line DataError."""
    root = Path(path) if path is not None else default_data_dir()
    if not (root / TRAIN_FILE).is_file():
        raise DataError(
            f"no dataset at {root}: expected {root / TRAIN_FILE}, {root / TEST_FILE} and {root / 'data'}/ "
            "(put the course data there, or set LAB5_DATA / --data to its folder; see data/README.md)"
        )
    return root


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame({"guid": pd.Series(dtype=str), "tag": pd.Series(dtype=str), "label": pd.Series(dtype=int)})


def load_dataset(path: Path | str | None = None) -> Dataset:
    """Load and validate a dataset folder; all problems are raised together as one :class:`DataError`."""
    root = resolve_data_dir(path)
    train = read_labels(root / TRAIN_FILE)
    test = read_labels(root / TEST_FILE, test=True) if (root / TEST_FILE).is_file() else _empty_labels()
    problems = Problems()
    for guid in sorted(set(train.guid) & set(test.guid), key=guid_key):
        problems.add("guids in both files", f"guid {guid}: listed in both {TRAIN_FILE} and {TEST_FILE}")
    frames, empty = [], []
    for frame, name in ((train, TRAIN_FILE), (test, TEST_FILE)):
        decoded = []
        for guid in frame.guid:
            txt, jpg = root / "data" / f"{guid}.txt", root / "data" / f"{guid}.jpg"
            if not txt.is_file():
                problems.add("missing texts", f"guid {guid} ({name}): text file missing: {txt}")
            if not jpg.is_file():
                problems.add("missing images", f"guid {guid} ({name}): image file missing: {jpg}")
            if not txt.is_file():
                decoded.append(DecodedText("", "missing", 0))
                continue
            try:
                d = read_text(txt, guid)
            except DataError as e:
                problems.add("unreadable texts", str(e))
                d = DecodedText("", "unreadable", 0)
            if not d.text:
                empty.append(guid)
            decoded.append(d)
        frames.append(frame.assign(text=[d.text for d in decoded], encoding=[d.encoding for d in decoded],
                                   replaced=[d.replaced for d in decoded]))
    problems.raise_if_any()
    listed = set(train.guid) | set(test.guid)
    on_disk = {p.stem for p in (root / "data").glob("*.txt")} if (root / "data").is_dir() else set()
    return Dataset(root, frames[0], frames[1], empty, len(on_disk - listed))
