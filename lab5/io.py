"""Atomic file writes: a temporary file in the same folder, fsync, then rename; and the digest that names cache
entries.

An interrupted run (Ctrl-C, a crash) never leaves a half-written file that a later run trusts.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
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


def digest(parts: dict) -> str:
    """A cache key: the first 16 hex digits of the sha256 of ``parts`` as sorted-key JSON (values JSON cannot hold,
    such as paths, as their ``str``). Equal parts give equal keys on every machine and in every process."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
