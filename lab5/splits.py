"""The one train/validation split of the labelled rows: committed for the course data, else drawn (seeded,
stratified) and stored in the cache so every later stage reads the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from .cache import atomic_write_bytes, path as cache_path
from .config import default_cache_dir
from .data import LABELS, TRAIN_FILE, Dataset, guid_key
from .errors import ConfigError, DataError

COMMITTED_SPLITS = Path(__file__).resolve().parent / "splits"
VAL_SIZE = 500
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """Train and validation guids; ``path`` is where the split is stored (None: drawn, not stored)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    path: Path | None


def stratify_by(labels: np.ndarray, k: int) -> np.ndarray | None:
    """What to stratify a draw of ``k`` rows by: ``labels`` when every class can fill both sides, else None."""
    counts = np.unique(labels, return_counts=True)[1]
    return labels if counts.min() >= 2 and len(counts) <= k <= len(labels) - len(counts) else None


def make_split(ds: Dataset, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED) -> list[str]:
    """A seeded, stratified draw of ``val_size`` validation guids (sorted numerically)."""
    train = ds.train
    if len(train) < 2:
        raise DataError(f"{ds.root / TRAIN_FILE}: {len(train)} labelled rows; at least 2 are needed for a validation split")
    if len(train) <= val_size:  # a small file: a fifth of it, at least one row per class where it can spare them
        val_size = min(max(len(LABELS), len(train) // 5), len(train) - 1)
    stratify = stratify_by(train.label.to_numpy(), val_size)
    _, val = train_test_split(train.guid.to_numpy(), test_size=val_size, random_state=seed, stratify=stratify)
    return sorted(val, key=guid_key)


def split_path(ds: Dataset, cache: Path | None = None) -> Path:
    """Where the split of ``ds`` lives: the committed file for the course data, else the cache."""
    name = f"val-{ds.labels_fingerprint}.txt"
    committed = COMMITTED_SPLITS / name
    return committed if committed.is_file() else cache_path(cache or default_cache_dir(), "splits", name)


def get_split(ds: Dataset, cache: Path | None = None, *, store: bool = True) -> Split:
    """The stored split of this labels file; drawn and stored (when ``store``) when there is none.

    A stored split not matching the labels raises :class:`DataError`.
    """
    path = split_path(ds, cache)
    if path.is_file():
        val = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    else:
        val = make_split(ds)
        if store:
            header = f"# validation guids of a labels file with fingerprint {ds.labels_fingerprint}; seed {SPLIT_SEED}; stratified\n"
            atomic_write_bytes(path, (header + "\n".join(val) + "\n").encode())
        else:
            path = None
    known = set(ds.train.guid)
    unknown = [g for g in val if g not in known]
    repeated = sorted({g for g in val if val.count(g) > 1}, key=guid_key)
    if unknown:
        raise DataError(f"{path}: stored split does not match the labels ({len(unknown)} guids not in {TRAIN_FILE}, "
                        f"e.g. {unknown[:3]}); delete it to draw a new one")
    if repeated:
        raise DataError(f"{path}: stored split lists guids twice (e.g. {repeated[:3]}); delete it to draw a new one")
    vset = set(val)
    return Split(tuple(g for g in ds.train.guid if g not in vset), tuple(val), path)


def training_subset(labels, n: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, stratified subset of ``n`` rows (all when 0); too many is a ConfigError."""
    labels = np.asarray(labels)
    if n == 0 or n == len(labels):
        return np.arange(len(labels))
    if n > len(labels):
        raise ConfigError(f"--train-rows {n} asks for more rows than the {len(labels)} there are to train on")
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, random_state=seed, stratify=stratify_by(labels, n))
    return np.sort(keep)
