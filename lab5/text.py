"""Tweet texts: decoding (UTF-8 or GB18030, nothing dropped), lexicon scores."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DataError


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str  # "utf-8", "gb18030", or "gb18030+replace" when some bytes decode in neither
    replaced: int  # bytes (runs) that decoded in neither encoding and became U+FFFD


def decode_text(raw: bytes) -> DecodedText:
    """Decode tweet bytes: UTF-8 (BOM allowed), else GB18030; invalid bytes become U+FFFD, counted."""
    try:
        return DecodedText(raw.decode("utf-8-sig").strip(), "utf-8", 0)
    except UnicodeDecodeError:
        pass
    try:
        return DecodedText(raw.decode("gb18030").strip(), "gb18030", 0)
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
        return DecodedText(text.strip(), "gb18030+replace", text.count("\ufffd"))


def read_text(path: Path, guid: str) -> DecodedText:
    """Read and decode one tweet; a missing or unreadable file raises :class:`DataError`."""
    try:
        return decode_text(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"guid {guid}: text file missing: {path}") from None
    except OSError as e:
        raise DataError(f"guid {guid}: text file {path} cannot be read ({e.strerror})") from None


def lexicon_scores(texts: list[str]) -> torch.Tensor:
    """VADER's negative, neutral, positive and compound scores of each text (N, 4)."""
    return torch.tensor([_vader(t) for t in texts])


@functools.cache
def _vader(text: str) -> tuple[float, float, float, float]:
    d = _analyzer().polarity_scores(text)
    return d["neg"], d["neu"], d["pos"], d["compound"]


@functools.cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()
