"""The data layer: labels files, tweet texts (UTF-8 or GB18030), images, validation, the stored split.

Everything a user can get wrong raises :class:`DataError`, whose message names the file and the guid;
nothing is dropped silently: decoding fallbacks, replaced bytes and empty texts are counted in a report.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .config import ConfigError

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Class names by id: negative 0, neutral 1, positive 2 (the reference report's mapping)."""
LABEL2ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
TRAIN_FILE = "train.txt"
TEST_FILE = "test_without_label.txt"
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
VAL_SIZE = 500
SPLIT_SEED = 0
MAX_LISTED = 5  # problems of one kind listed one by one before they are counted


class DataError(Exception):
    """A problem with the user's data; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class _Problems:
    """Collects problems by kind, so that many of one kind are listed briefly and counted."""

    by_kind: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, line: str) -> None:
        self.by_kind[kind].append(line)

    def lines(self) -> list[str]:
        out = []
        for kind, items in self.by_kind.items():
            out.extend(items[:MAX_LISTED])
            if len(items) > MAX_LISTED:
                out.append(f"... and {len(items) - MAX_LISTED} more: {kind}")
        return out

    def raise_if_any(self) -> None:
        if self.by_kind:
            raise DataError(self.lines())


# --------------------------------------------------------------------------- labels files
def read_labels(path: Path, *, test: bool = False) -> pd.DataFrame:
    """Read a ``guid,tag`` file into a frame with columns ``guid`` (str), ``tag`` and ``label`` (int, -1 for test).

    Tolerated and normalised: a UTF-8 BOM, CRLF line endings, blank lines, upper-case or padded tags and guids.
    Refused with a :class:`DataError` naming the file, line and guid: a missing header, a malformed line,
    an unknown tag (in the test file every tag must be ``null``), a duplicate guid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows or [c.strip().lower() for c in rows[0]] != ["guid", "tag"]:
        first = ",".join(rows[0]) if rows else "an empty file"
        raise DataError(f"{path}: missing header 'guid,tag' (first line is {first!r})")
    problems = _Problems()
    seen: dict[str, int] = {}
    guids, tags = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip():
            problems.add("malformed lines", f"{path}:{lineno}: malformed line {','.join(row)!r} (expected guid,tag)")
            continue
        guid, tag = row[0].strip(), row[1].strip().lower()
        if guid in seen:
            problems.add("duplicate guids", f"{path}:{lineno}: guid {guid}: duplicate (first on line {seen[guid]})")
            continue
        seen[guid] = lineno
        allowed = ("null",) if test else LABELS
        if tag not in allowed:
            expected = "null" if test else "positive, neutral or negative"
            problems.add("unknown tags", f"{path}:{lineno}: guid {guid}: unknown tag {row[1].strip()!r} (expected {expected})")
            continue
        guids.append(guid)
        tags.append(tag)
    problems.raise_if_any()
    return pd.DataFrame({"guid": guids, "tag": tags, "label": [LABEL2ID.get(t, -1) for t in tags]})


# --------------------------------------------------------------------------- texts
@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str  # "utf-8", "gb18030", or "gb18030+replace" when some bytes decode in neither
    replaced: int  # bytes (runs) that decoded in neither encoding and became U+FFFD


def decode_text(raw: bytes) -> DecodedText:
    """Decode tweet bytes: UTF-8 (BOM allowed), else GB18030; never drop a byte.

    Bytes valid in neither become U+FFFD and are counted in ``replaced``.
    """
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


_URL = re.compile(r"https?://\S*|www\.\S+")
_RT = re.compile(r"^RT\s+@\w+:?\s*")
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")


def normalize_tweet(text: str) -> str:
    """Tweet-aware text for the encoder: no retweet prefix, ``@user`` for handles, ``http`` for links,
    hashtags as the words they join (``#WeDemandSafety4Bapuji`` -> ``We Demand Safety 4 Bapuji``), HTML entities
    unescaped and whitespace squeezed. Non-Latin text is kept as it is."""
    text = html.unescape(text)
    text = _RT.sub("", text)
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    text = _HASHTAG.sub(lambda m: _CAMEL.sub(" ", m.group(1)).replace("_", " "), text)
    text = text.replace("\u2026", "...")  # the ellipsis Twitter puts on cut-off text
    return " ".join(text.split())


def encoder_texts(texts, clean: str) -> list[str]:
    """The texts as the text encoder reads them: unchanged (``none``) or :func:`normalize_tweet` (``tweet``)."""
    if clean == "none":
        return list(texts)
    if clean == "tweet":
        return [normalize_tweet(t) for t in texts]
    raise ConfigError(f"unknown --text-clean {clean!r}; use none or tweet")


# --------------------------------------------------------------------------- images
def load_image(path: Path, guid: str, min_side: int | None = None) -> Image.Image:
    """Open an image fully decoded as RGB (grayscale, CMYK, palette, PNG bytes under .jpg all load).

    With ``min_side``, a JPEG is decoded at the smallest power-of-two reduction whose sides stay at least
    that long (much faster for the big photos; the result is still resized by the encoder's transform).

    A missing, truncated or unreadable file, or one above PIL's decompression-bomb limit, raises
    :class:`DataError` naming the guid and the path.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if min_side:
                    w, h = img.size
                    scale = max(1.0, min(w, h) / min_side)
                    img.draft("RGB", (int(w / scale), int(h / scale)))
                img.load()
                return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"guid {guid}: image file missing: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"guid {guid}: image {path} is too large to decode safely ({e})") from None
    except PermissionError as e:
        raise DataError(f"guid {guid}: image {path} cannot be read ({e.strerror})") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these for corrupt, truncated or foreign files
        raise DataError(f"guid {guid}: image {path} is unreadable or corrupt ({e})") from None


# --------------------------------------------------------------------------- the dataset
@dataclass
class Dataset:
    """A validated dataset folder: labelled ``train`` and unlabelled ``test`` frames with decoded texts.

    Frames have columns ``guid, tag, label, text, encoding, replaced``; images load lazily with
    :meth:`image`.
    """

    root: Path
    train: pd.DataFrame
    test: pd.DataFrame
    empty_texts: list[str]
    unlisted: int  # pairs in data/ that are in neither labels file

    def text_path(self, guid: str) -> Path:
        return self.root / "data" / f"{guid}.txt"

    def image_path(self, guid: str) -> Path:
        return self.root / "data" / f"{guid}.jpg"

    def image(self, guid: str, min_side: int | None = None) -> Image.Image:
        return load_image(self.image_path(guid), guid, min_side)

    @functools.cached_property
    def all(self) -> pd.DataFrame:
        """Train then test rows, in file order: the order every feature cache uses (built once)."""
        return pd.concat([self.train.assign(split="train"), self.test.assign(split="test")], ignore_index=True)

    def encodings(self) -> Counter:
        return Counter(self.all["encoding"])


def resolve_data_dir(path: Path | str | None) -> Path:
    """The data folder: the given path, else ``LAB5_DATA``, else ``./data``; a wrong one raises a one-line DataError."""
    from .config import default_data_dir

    root = Path(path) if path is not None else default_data_dir()
    if not (root / TRAIN_FILE).is_file():
        raise DataError(
            f"no dataset at {root}: expected {root / TRAIN_FILE}, {root / TEST_FILE} and {root / 'data'}/ "
            "(put the course data there, or set LAB5_DATA / --data to its folder; see data/README.md)"
        )
    return root


def load_dataset(path: Path | str | None = None) -> Dataset:
    """Load and validate a dataset folder (labels, texts, presence of every image).

    All problems are collected and raised together as one :class:`DataError`.
    """
    root = resolve_data_dir(path)
    train = read_labels(root / TRAIN_FILE)
    test = read_labels(root / TEST_FILE, test=True) if (root / TEST_FILE).is_file() else read_labels_empty()
    problems = _Problems()
    both = set(train.guid) & set(test.guid)
    for guid in sorted(both, key=_guid_key):
        problems.add("guids in both files", f"guid {guid}: listed in both {TRAIN_FILE} and {TEST_FILE}")
    frames = []
    empty = []
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
        frames.append(frame.assign(
            text=[d.text for d in decoded], encoding=[d.encoding for d in decoded], replaced=[d.replaced for d in decoded]
        ))
    problems.raise_if_any()
    listed = set(train.guid) | set(test.guid)
    on_disk = {p.stem for p in (root / "data").glob("*.txt")} if (root / "data").is_dir() else set()
    return Dataset(root, frames[0], frames[1], empty, len(on_disk - listed))


def read_labels_empty() -> pd.DataFrame:
    return pd.DataFrame({"guid": pd.Series(dtype=str), "tag": pd.Series(dtype=str), "label": pd.Series(dtype=int)})


def _guid_key(guid: str):
    return (0, int(guid), "") if guid.isdigit() else (1, 0, guid)


@dataclass
class ImageReport:
    count: int
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    modes: Counter


def check_images(ds: Dataset, *, progress: bool = False) -> ImageReport:
    """Decode every listed image once; all failures are collected into one :class:`DataError`."""
    from tqdm.auto import tqdm

    problems = _Problems()
    sizes, modes = [], Counter()
    for guid in tqdm(list(ds.all.guid), desc="images", disable=not progress, unit="img"):
        path = ds.image_path(guid)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    size, mode = img.size, img.mode
                    img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))  # JPEG: whole file, reduced DCT
                    img.load()
            sizes.append(size)
            modes[mode] += 1
        except Exception:
            try:
                load_image(path, guid)  # the full decode names the problem precisely
            except DataError as e:
                problems.add("bad images", str(e))
    problems.raise_if_any()
    area = [w * h for w, h in sizes] or [0]
    return ImageReport(len(sizes), sizes[int(np.argmin(area))] if sizes else (0, 0),
                       sizes[int(np.argmax(area))] if sizes else (0, 0), modes)


# --------------------------------------------------------------------------- the validation split
@dataclass(frozen=True)
class Split:
    """The one train/validation split of the labelled rows, shared by every stage."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    path: Path


def labels_fingerprint(train: pd.DataFrame) -> str:
    """Identity of a labels file, independent of BOM, line endings and row order."""
    lines = sorted(f"{g},{t}" for g, t in zip(train.guid, train.tag))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def make_split(train: pd.DataFrame, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED) -> list[str]:
    """A seeded, stratified draw of ``val_size`` validation guids (sorted numerically)."""
    from sklearn.model_selection import train_test_split

    if len(train) <= val_size:
        val_size = max(len(LABELS), len(train) // 5)
    if len(train) < 2:
        raise DataError(f"{TRAIN_FILE}: {len(train)} labelled rows; at least 2 are needed for a validation split")
    counts = train.label.value_counts()
    # stratify when every class can give a row to each side (a tiny or lopsided file is drawn plainly)
    stratify = train.label.to_numpy() if counts.min() >= 2 and val_size >= len(counts) else None
    _, val = train_test_split(train.guid.to_numpy(), test_size=val_size, random_state=seed, stratify=stratify)
    return sorted(val, key=_guid_key)


def get_split(ds: Dataset, splits_dir: Path = SPLITS_DIR) -> Split:
    """The stored split for this labels file; drawn (seeded, stratified) and stored the first time.

    The course data's split is committed in ``lab5/splits/``. A split that no longer matches the labels
    (a guid not in ``train.txt``) raises :class:`DataError`. Repeated calls return the same object.
    """
    return _get_split(labels_fingerprint(ds.train), tuple(ds.train.guid), Path(splits_dir), ds.train)


_SPLIT_CACHE: dict[tuple, Split] = {}


def _get_split(key: str, guids: tuple[str, ...], splits_dir: Path, train: pd.DataFrame) -> Split:
    cache_key = (key, splits_dir)
    if cache_key in _SPLIT_CACHE:
        return _SPLIT_CACHE[cache_key]
    path = splits_dir / f"val-{key}.txt"
    if path.is_file():
        val = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    else:
        val = make_split(train)
        splits_dir.mkdir(parents=True, exist_ok=True)
        header = f"# validation guids of a labels file with fingerprint {key}; seed {SPLIT_SEED}; stratified\n"
        _atomic_write_text(path, header + "\n".join(val) + "\n")
    known = set(guids)
    unknown = [g for g in val if g not in known]
    if unknown or len(set(val)) != len(val):
        raise DataError(f"{path}: stored split does not match the labels ({len(unknown)} guids not in {TRAIN_FILE}, "
                        f"e.g. {unknown[:3]}); delete it to draw a new one")
    vset = set(val)
    split = Split(tuple(g for g in guids if g not in vset), tuple(val), path)
    _SPLIT_CACHE[cache_key] = split
    return split


def _atomic_write_text(path: Path, text: str) -> None:
    from .io import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- predictions file
def format_predictions(test: pd.DataFrame, predicted: dict[str, str]) -> str:
    """``guid,tag`` lines in the order of the test file, ``null`` replaced by the predicted tag.

    Checked before anything is written: every test guid predicted, nothing else, only valid tags.
    """
    missing = [g for g in test.guid if g not in predicted]
    extra = sorted(set(predicted) - set(test.guid), key=_guid_key)
    bad = [(g, t) for g, t in predicted.items() if t not in LABELS]
    if missing or extra or bad:
        raise DataError(f"predictions do not match {TEST_FILE}: {len(missing)} guids missing (e.g. {missing[:3]}), "
                        f"{len(extra)} unknown (e.g. {extra[:3]}), {len(bad)} invalid tags (e.g. {bad[:3]})")
    return "guid,tag\n" + "".join(f"{g},{predicted[g]}\n" for g in test.guid)


def write_predictions(test: pd.DataFrame, predicted: dict[str, str], out: Path) -> Path:
    """Write the predictions file atomically (an old file is replaced only by a complete, checked one)."""
    text = format_predictions(test, predicted)
    back = read_labels_from_text(text)
    assert list(back.guid) == list(test.guid) and set(back.tag) <= set(LABELS)
    _atomic_write_text(Path(out), text)
    return Path(out)


def read_labels_from_text(text: str) -> pd.DataFrame:
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return pd.DataFrame(rows, columns=["guid", "tag"])


# --------------------------------------------------------------------------- exploration
_PATTERNS = {
    "hashtags": r"#\w+",
    "mentions": r"@\w+",
    "urls": r"https?://\S+",
    "retweet": r"^RT\b",
}


def text_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per tweet: words, characters, hashtags, mentions, URLs, emoji, whether it is a retweet."""
    import emoji

    out = pd.DataFrame({"guid": frame.guid, "tag": frame.tag, "encoding": frame.encoding})
    out["words"] = frame.text.str.split().str.len()
    out["chars"] = frame.text.str.len()
    for name, pat in _PATTERNS.items():
        out[name] = frame.text.str.count(pat)
    out["emoji"] = [emoji.emoji_count(t) for t in frame.text]
    return out


def image_sizes(ds: Dataset, guids=None) -> pd.DataFrame:
    """Width and height of each image (from the header; nothing decoded)."""
    rows = []
    for guid in (ds.all.guid if guids is None else guids):
        with Image.open(ds.image_path(guid)) as img:
            rows.append((guid, *img.size))
    return pd.DataFrame(rows, columns=["guid", "width", "height"])
