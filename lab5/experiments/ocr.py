"""The words in the picture: every image read once by an OCR engine and cached like the features (measured in
:mod:`lab5.experiments.words` and not adopted: the default run does not read them)::

    python -m lab5.experiments.ocr     (reads the words; writes figures/01_image_words.csv, the counts by class)

The engine is RapidOCR (``rapidocr-onnxruntime``): PP-OCRv4's text detector and recogniser, ONNX files inside its
wheel, run on the CPU by onnxruntime, so it needs no model hub. Each image gives its recognised lines in reading
order, joined by spaces, with their mean confidence and the number of boxes. An image the engine cannot read gets no
words; it is counted and reported, and never stops the run.

The cache (:mod:`lab5.cache`) is a table a person can read (``<cache>/ocr/words-<key>.csv``: guid, words, confidence,
boxes, error) with a ``.json`` beside it (its sha256 and what made it). Its key holds the engine and its version,
the model files' hashes, :data:`SETTINGS`, the image inputs' fingerprint and the processor: onnxruntime picks its CPU
kernels itself and offers no way to pin them, so another processor may read a few words differently.
"""
from __future__ import annotations

import io
import logging
import platform
from pathlib import Path

import pandas as pd

from .. import cache as store, profile
from ..parallel import run_all
from ..runtime import cpu_model

log = logging.getLogger("lab5")
ENGINE = "rapidocr-onnxruntime"
#: the engine's settings: no angle classifier (tweets' images are upright); the detector enlarges an image whose
#: shorter side is under 320 px to 320 (736, its default, would enlarge most of them) and reads larger ones as they
#: are; lines kept from a recognition score of 0.5; one onnxruntime thread per process, so the words repeat byte for
#: byte
SETTINGS = {"use_cls": False, "det_limit_side_len": 320, "text_score": 0.5, "intra_op_num_threads": 1,
            "inter_op_num_threads": 1}
COLUMNS = ["guid", "words", "confidence", "boxes", "error"]
#: images read per task of the worker pool
CHUNK = 64

_ENGINE = None  # one engine per process, made on first use (forked workers make their own)


def model_files() -> list[Path]:
    """The engine's ONNX files, inside its installed package."""
    import rapidocr_onnxruntime

    return sorted((Path(rapidocr_onnxruntime.__file__).parent / "models").glob("*.onnx"))


def _engine():
    global _ENGINE
    if _ENGINE is None:
        from rapidocr_onnxruntime import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR)
        _ENGINE = RapidOCR(**SETTINGS)
    return _ENGINE


def read_image(path: Path) -> dict:
    """The words of one image: its lines joined by spaces, their mean confidence and the number of boxes; an image
    the engine cannot read gets no words and the reason in ``error``."""
    try:
        result, _ = _engine()(str(path))
    except Exception as e:  # a corrupt or foreign file: no words, reported by the caller
        return {"words": "", "confidence": 0.0, "boxes": 0, "error": f"{type(e).__name__}: {e}".strip()}
    lines = [(str(text).strip(), float(score)) for _, text, score in result or [] if str(text).strip()]
    confidence = sum(s for _, s in lines) / len(lines) if lines else 0.0
    return {"words": " ".join(t for t, _ in lines), "confidence": round(confidence, 4), "boxes": len(lines), "error": ""}


def image_words(ds, cache: Path, jobs: int = 1, progress: bool = False, *, cached_only: bool = False) -> pd.DataFrame | None:
    """The words of every listed image of ``ds`` (train then test, the feature caches' order): read from the cache,
    or read now (``jobs`` processes side by side) and stored; with ``cached_only``, None when they are not cached.
    Columns: :data:`COLUMNS`."""
    from ..encoders import file_fingerprint
    from ..features import image_input_fingerprint

    guids = list(ds.all.guid)
    key, parts = store.key({"engine": ENGINE, "models": file_fingerprint(*model_files()), "settings": SETTINGS,
                            "inputs": image_input_fingerprint(ds), "cpu": [platform.machine(), cpu_model()]},
                           (ENGINE, "onnxruntime", "opencv-python"))
    path = store.path(cache, "ocr", f"words-{key}.csv")

    def read(blob: bytes, meta: dict) -> pd.DataFrame:
        table = pd.read_csv(io.BytesIO(blob), dtype={"guid": str, "words": str, "error": str}, keep_default_na=False)
        if list(table.guid) != guids or list(table.columns) != COLUMNS:
            raise ValueError("guid or column mismatch")
        return table

    table = store.load(path, read)
    if table is None and cached_only:
        return None
    if table is None:
        log.info("reading the words in %d images with %s -> %s", len(guids), ENGINE, path)
        chunks = [guids[s:s + CHUNK] for s in range(0, len(guids), CHUNK)]
        with profile.stage("ocr words in the images"):
            done = run_all(lambda gs: [read_image(ds.image_path(g)) for g in gs], chunks, jobs,
                           progress="image words" if progress else None)
        table = pd.DataFrame([{"guid": g, **r} for gs, rs in zip(chunks, done) for g, r in zip(gs, rs)], columns=COLUMNS)
        store.store(path, table.to_csv(index=False).encode(), parts)
    failed = table[table.error != ""]
    if len(failed):
        log.warning("%d of %d images could not be read for words (they get none): %s", len(failed), len(table),
                    ", ".join(f"guid {g} ({e})" for g, e in zip(failed.guid[:3], failed.error[:3])))
    return table


def with_words(texts: list[str], words: list[str], min_words: int = 2, max_words: int = 40) -> list[str]:
    """Each text with its image's words appended (``tweet | words``) where the image gave at least ``min_words``
    words, the first ``max_words`` of them; the others unchanged."""
    out = []
    for text, w in zip(texts, words):
        w = w.split()
        out.append(f"{text} | {' '.join(w[:max_words])}" if len(w) >= min_words else text)
    return out


def words_by_class(labels: pd.Series, words: pd.Series, min_words: int = 2) -> pd.DataFrame:
    """Per class (``labels``: tags of the labelled pairs; ``words``: their images' words, same order): the pairs,
    those whose image gave at least ``min_words`` words, that share, and the mean number of words among them."""
    n = words.str.split().str.len().to_numpy()
    frame = pd.DataFrame({"class": labels.to_numpy(), "has": n >= min_words, "words": n})
    g = frame.groupby("class", sort=False)
    out = pd.DataFrame({"pairs": g.size(), "with words": g.has.sum(), "share": g.has.mean(),
                        "mean words, when any": frame[frame.has].groupby("class", sort=False).words.mean()})
    return out.fillna(0).astype({"with words": int})


#: the committed counts by class notebook 1 reads (counts only: the words themselves are course data)
BY_CLASS_FILE = "01_image_words.csv"


def main(argv: list[str] | None = None) -> int:
    """Read the words in every image of the dataset (``LAB5_DATA``) and write their counts by class."""
    from . import parser, run

    def build(args, cfg, ds) -> tuple[pd.DataFrame, str]:
        words = image_words(ds, cfg.cache, cfg.jobs)
        table = words_by_class(ds.train.tag, words.words[:len(ds.train)]).reset_index()
        unread = f"{int((words.error != '').sum())} of {len(words)} images could not be read"
        return table.round(4), f"{table.to_string(index=False)}\n{unread}"

    return run(parser("python -m lab5.experiments.ocr", __doc__), argv,
               f"counts by class (CSV; default <output root>/figures/{BY_CLASS_FILE})",
               lambda root, args: root.figures / BY_CLASS_FILE, build, cv=False)


if __name__ == "__main__":
    raise SystemExit(main())
