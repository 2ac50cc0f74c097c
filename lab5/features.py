"""The feature cache: frozen-encoder outputs for every guid, computed once and stored on disk, keyed by
everything they depend on (:func:`lab5.cache.key`).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass

import torch

from . import cache, profile
from .cache import sha256
from .config import Config, text_encoder_names
from .data import Dataset
from .encoders import ImageEncoder, TextEncoder, image_encoder, text_encoder
from .parallel import run_all
from .runtime import reproducible, resolve_device
from .text import lexicon_scores

log = logging.getLogger("lab5")
#: libraries whose versions can change the encoders' numbers (part of every feature cache key)
TEXT_LIBRARIES = ("torch", "transformers", "tokenizers")
IMAGE_LIBRARIES = ("torch", "torchvision", "pillow", "efficientnet-lite-pytorch")


@dataclass
class FeatureSet:
    """Pooled vectors (N, D) float32, sequences (N, L, D) float16 and their mask (N, L) for ``guids``."""

    guids: list[str]
    pooled: torch.Tensor
    seq: torch.Tensor
    mask: torch.Tensor
    key: str = ""

    def rows(self, guids) -> torch.Tensor:
        """Row indices of ``guids`` (a KeyError names a guid that is not in the set)."""
        pos = {g: i for i, g in enumerate(self.guids)}
        return torch.tensor([pos[g] for g in guids], dtype=torch.long)

    @property
    def dim(self) -> int:
        return self.pooled.shape[1]


def text_input_fingerprint(guids: list[str], texts: list[str]) -> str:
    return sha256(json.dumps([guids, texts], ensure_ascii=False).encode())[:16]


def image_input_fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    for guid in ds.all.guid:
        h.update(guid.encode() + b"\0")
        h.update(ds.image_path(guid).read_bytes())
    return h.hexdigest()[:16]


def _cached(cfg: Config, kind: str, parts: dict, libraries: tuple[str, ...], guids: list[str], build) -> FeatureSet:
    """The features of ``kind`` keyed by ``parts`` (:func:`lab5.cache.key`): read from the cache, or built, stored."""
    key, made = cache.key(parts, libraries)
    path = cache.path(cfg.cache, "features", f"{kind}-{parts['encoder'].replace('/', '_')}-{key}.pt")

    def read(blob: bytes, meta: dict) -> FeatureSet:
        d = torch.load(io.BytesIO(blob), weights_only=True)
        if list(d["guids"]) != guids:
            raise ValueError("guid mismatch")
        return FeatureSet(guids, d["pooled"], d["seq"], d["mask"], key)

    fs = cache.load(path, read)
    if fs is not None:
        log.info("loaded %s features from %s", kind, path)
        return fs
    log.info("computing %s features with %s for %d pairs -> %s", kind, parts["encoder"], len(guids), path)
    with reproducible(cfg.seed, 1), profile.stage(f"features {kind} {parts['encoder']}"):  # one thread a batch
        pooled, seq, mask = build()
    fs = FeatureSet(guids, pooled.float(), seq.half(), mask.bool(), key)
    buf = io.BytesIO()
    torch.save({"guids": fs.guids, "pooled": fs.pooled, "seq": fs.seq, "mask": fs.mask}, buf)
    cache.store(path, buf.getvalue(), {**made, "key": key})
    return fs


def _run_args(cfg: Config) -> dict:
    """Where and how an extraction pass runs: the device (resolved once), the jobs side by side, the progress bar."""
    return {"device": resolve_device(cfg.device), "jobs": cfg.jobs, "progress": cfg.progress}


def text_features(ds: Dataset, cfg: Config, encoder: TextEncoder | None = None) -> FeatureSet:
    """Text features of every train and test guid (cached)."""
    enc = encoder or text_encoder(cfg.text_encoder, cfg.cache)
    guids, texts = list(ds.all.guid), list(ds.all.text)
    parts = {"encoder": enc.name, "weights": enc.fingerprint, "preprocessing": enc.preprocessing(cfg.max_length),
             "inputs": text_input_fingerprint(guids, texts)}
    return _cached(cfg, "text", parts, TEXT_LIBRARIES, guids, lambda: encode_texts(enc, texts, max_length=cfg.max_length, **_run_args(cfg)))


def image_features(ds: Dataset, cfg: Config, encoder: ImageEncoder | None = None) -> FeatureSet:
    """Image features of every train and test guid (cached)."""
    enc = encoder or image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    guids = list(ds.all.guid)
    parts = {"encoder": enc.name, "weights": enc.fingerprint, "preprocessing": enc.preprocessing(),
             "inputs": image_input_fingerprint(ds)}
    return _cached(cfg, "image", parts, IMAGE_LIBRARIES, guids, lambda: encode_images(enc, ds, guids, **_run_args(cfg)))


def encode_texts(enc: TextEncoder, texts: list[str], *, max_length: int, device: str = "cpu", jobs: int = 1,
                 progress: bool = False, batch_size: int = 64):
    """Run the frozen text encoder over ``texts`` (last layer's states), in the input order.

    Batches are sorted by length and padded to their longest text; states come back right-padded to ``max_length``.
    """
    enc = enc.to(device).eval()
    tok = enc.tokenize(texts, max_length)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    lengths = mask.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)  # longest first: peak memory is met at once
    batches = [order[s:s + batch_size] for s in range(0, len(texts), batch_size)]

    def one(rows: torch.Tensor):
        n = max(1, int(lengths[rows].max()))
        with torch.inference_mode():
            p, h, _ = enc(ids[rows, :n].to(device), mask[rows, :n].to(device))
            return p.float().cpu(), (h * mask[rows, :n, None].to(h.device)).half().cpu()

    pooled = torch.zeros(len(texts), enc.dim)
    seq = torch.zeros(len(texts), ids.shape[1], enc.dim, dtype=torch.float16)
    for rows, (p, h) in zip(batches, run_all(one, batches, jobs, progress="text features" if progress else None)):
        pooled[rows] = p
        seq[rows, :h.shape[1]] = h
    return pooled, seq, mask


class ImageFolder(torch.utils.data.Dataset):
    """Images of ``guids`` through a transform (decoded with a JPEG draft for speed)."""

    def __init__(self, ds: Dataset, guids: list[str], transform, min_side: int):
        self.ds, self.guids, self.transform, self.min_side = ds, guids, transform, min_side

    def __len__(self) -> int:
        return len(self.guids)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.ds.image(self.guids[i], self.min_side))


def encode_images(enc: ImageEncoder, ds: Dataset, guids: list[str], *, device: str = "cpu", jobs: int = 1,
                  progress: bool = False, batch_size: int = 32):
    """Run the frozen image encoder over the images of ``guids`` in ``channels_last`` batches, ``jobs`` at a
    time on one thread each (faster on CPU than one batch on two threads).
    """
    enc = enc.to(device, memory_format=torch.channels_last).eval()
    folder = ImageFolder(ds, guids, enc.spec.transform(), enc.spec.resize)
    batches = [range(s, min(s + batch_size, len(guids))) for s in range(0, len(guids), batch_size)]

    def one(rows: range):
        x = torch.stack([folder[i] for i in rows])
        with torch.inference_mode():
            p, s, m = enc(x.to(device, memory_format=torch.channels_last))
            return p.float().cpu(), s.contiguous().half().cpu(), m.cpu()

    out = run_all(one, batches, jobs, progress="image features" if progress else None)
    return tuple(torch.cat(x) for x in zip(*out))


@dataclass(frozen=True)
class Dims:
    """Input widths of a model: pooled text and image vectors, token states and image regions."""

    text: int
    image: int
    text_seq: int
    image_seq: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Features:
    """Image features and one text feature set per text encoder (``texts``), aligned by guid."""

    texts: dict[str, FeatureSet]
    image: FeatureSet

    @property
    def text(self) -> FeatureSet:
        """The text features, when there is one text encoder."""
        if len(self.texts) != 1:
            raise ValueError(f"features of {len(self.texts)} text encoders ({', '.join(self.texts)}): pick one with .of(name)")
        return next(iter(self.texts.values()))

    def of(self, encoder: str) -> "Features":
        """The features one text encoder's member reads: its text features and the shared image features."""
        if encoder not in self.texts:
            raise KeyError(f"no text features of encoder {encoder!r} (there are: {', '.join(self.texts)})")
        return Features({encoder: self.texts[encoder]}, self.image)

    def dims(self) -> dict[str, Dims]:
        """Input widths by text encoder: pooled vectors, token states and image regions."""
        i = self.image
        return {name: Dims(t.dim, i.dim, t.seq.shape[-1], i.seq.shape[-1]) for name, t in self.texts.items()}


def with_lexicon(fs: FeatureSet, ds: Dataset) -> FeatureSet:
    """Text features with the VADER scores appended to the pooled vector (cheap: computed, not cached)."""
    return FeatureSet(fs.guids, torch.cat([fs.pooled, lexicon_scores(list(ds.all.text))], dim=1), fs.seq, fs.mask,
                      fs.key + "+lexicon")


#: the config fields that decide which text features, and which image features, :func:`load_features` returns
TEXT_FIELDS = ("cache", "text_encoder", "text_features", "max_length", "device", "seed")
IMAGE_FIELDS = ("cache", "image_encoder", "image_size", "device", "seed")
FEATURE_FIELDS = tuple(dict.fromkeys(TEXT_FIELDS + IMAGE_FIELDS))


def feature_fields(cfg: Config) -> tuple:
    """The values of :data:`FEATURE_FIELDS`: two configs that agree on them share their features."""
    return tuple(getattr(cfg, f) for f in FEATURE_FIELDS)


def load_features(ds: Dataset, cfg: Config) -> Features:
    """Both modalities' features, from the cache or computed once; one text set per joined text encoder.

    Each set is kept in :attr:`lab5.data.Dataset.memo`: keying a cache file means loading its encoder (seconds).
    """
    def memo(key: tuple, load):
        if key not in ds.memo:
            ds.memo[key] = load()
        return ds.memo[key]

    def text_of(name: str) -> FeatureSet:
        c = cfg.replace(text_encoder=name)

        def load() -> FeatureSet:
            text = text_features(ds, c)
            return with_lexicon(text, ds) if c.text_features == "tokens+lexicon" else text

        return memo(("text", *(getattr(c, f) for f in TEXT_FIELDS)), load)

    first, *more = text_encoder_names(cfg.text_encoder)
    texts = {first: text_of(first)}
    image = memo(("image", *(getattr(cfg, f) for f in IMAGE_FIELDS)), lambda: image_features(ds, cfg))
    return Features({**texts, **{name: text_of(name) for name in more}}, image)
