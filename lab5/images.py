"""Images: one safe JPEG decode (decompression-bomb guard, every PIL failure named), a whole-folder check, sizes."""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from .errors import DataError, Problems


def _decode(path: Path, guid: str, draft: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
            rgb: bool = True) -> tuple[Image.Image | None, tuple[int, int], str]:
    """Open and fully decode an image: (RGB image or None, original size, original mode).

    ``draft`` maps the size to a JPEG draft size; a bad file raises :class:`DataError` naming guid and path.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size, mode = img.size, img.mode
                if draft is not None:
                    img.draft("RGB", draft(size))
                img.load()
                return (img.convert("RGB") if rgb else None), size, mode
    except FileNotFoundError:
        raise DataError(f"guid {guid}: image file missing: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"guid {guid}: image {path} is too large to decode safely ({e})") from None
    except PermissionError as e:
        raise DataError(f"guid {guid}: image {path} cannot be read ({e.strerror})") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for corrupt, truncated or foreign files
        raise DataError(f"guid {guid}: image {path} is unreadable or corrupt ({e})") from None


def load_image(path: Path, guid: str, min_side: int | None = None) -> Image.Image:
    """An image fully decoded as RGB; with ``min_side``, a JPEG at the smallest reduction keeping that side."""
    def draft(size: tuple[int, int]) -> tuple[int, int]:
        w, h = size
        scale = max(1.0, min(w, h) / min_side)
        return int(w / scale), int(h / scale)

    return _decode(path, guid, draft if min_side else None)[0]


@dataclass
class ImageReport:
    count: int
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    modes: Counter


def check_images(paths: dict[str, Path], *, progress: bool = False) -> ImageReport:
    """Decode every image of ``paths`` (guid -> path) once, at 1/8 scale; all failures raise one :class:`DataError`."""
    problems = Problems()
    sizes, modes = [], Counter()
    for guid, path in tqdm(paths.items(), desc="images", disable=not progress, unit="img"):
        try:
            _, size, mode = _decode(path, guid, lambda s: (max(1, s[0] // 8), max(1, s[1] // 8)), rgb=False)
        except DataError as e:
            problems.add("bad images", str(e))
            continue
        sizes.append(size)
        modes[mode] += 1
    problems.raise_if_any()
    area = [w * h for w, h in sizes] or [0]
    return ImageReport(len(sizes), sizes[int(np.argmin(area))] if sizes else (0, 0),
                       sizes[int(np.argmax(area))] if sizes else (0, 0), modes)


def image_sizes(paths: dict[str, Path]) -> pd.DataFrame:
    """Width and height of each image (from the header; nothing decoded)."""
    rows = []
    for guid, path in paths.items():
        with Image.open(path) as img:
            rows.append((guid, *img.size))
    return pd.DataFrame(rows, columns=["guid", "width", "height"])
