"""The one cache: features, CV runs, trainings, OCR words and splits, keyed, written, checked and rebuilt here.

An entry is a payload and a ``.json`` sidecar with its sha256 and key parts; writes are atomic, payload first, and a
damaged entry is rebuilt with one warning. Not ``joblib.Memory``: it keys by source and all arguments, checks no
checksum and stores pickles.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .runtime import numerics, versions

log = logging.getLogger("lab5")

#: Bump when what an entry means changes while the rest of its key stays: every entry is then rebuilt.
FORMAT_VERSION = 1
#: libraries whose versions can change a trained model or a CV run
TRAINING_LIBRARIES = ("torch", "numpy", "scikit-learn", "vaderSentiment")
#: where each kind of entry lives under the cache folder
FOLDERS = {"features": ".", "cv": "cv", "train": "train", "ocr": "ocr", "splits": "splits"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(parts) -> str:
    """The first 16 hex digits of the sha256 of ``parts`` as sorted-key JSON: equal on every machine."""
    return sha256(json.dumps(parts, sort_keys=True, default=str).encode())[:16]


def key(parts: dict, libraries: tuple[str, ...] = ()) -> tuple[str, dict]:
    """The key of an entry decided by ``parts`` and computed by ``libraries``, and what it is made of."""
    made = {**parts, "libraries": versions(*libraries), "numerics": numerics(), "format": FORMAT_VERSION}
    return digest(made), made


def path(cache: Path, kind: str, name: str) -> Path:
    """Where the entry ``name`` of ``kind`` (a key of :data:`FOLDERS`) lives under the cache folder ``cache``."""
    return Path(cache) / FOLDERS[kind] / name


def sidecar(payload: Path) -> Path:
    return payload.with_suffix(".json")


def store(payload: Path, blob: bytes, made: dict) -> None:
    """Write an entry: ``blob`` to ``payload``, then its sidecar (``made`` and the sha256 of ``blob``)."""
    atomic_write_bytes(payload, blob)
    atomic_write_bytes(sidecar(payload), json.dumps({**made, "sha256": sha256(blob)}, indent=1).encode())


def load(payload: Path, read: Callable[[bytes, dict], Any]) -> Any:
    """``read(blob, sidecar)`` of the entry at ``payload``; None (with a warning if damaged) when unusable."""
    if not payload.is_file() and not sidecar(payload).is_file():
        return None
    try:
        meta = json.loads(sidecar(payload).read_text())
        blob = payload.read_bytes()
        if sha256(blob) != meta["sha256"]:
            raise ValueError("checksum mismatch")
        return read(blob, meta)
    except Exception as e:  # any damage means: rebuild
        log.warning("cache file %s is corrupt or from another version (%s); rebuilding it", payload, e)
        return None
