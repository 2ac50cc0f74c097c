"""lab5.experiments.ocr: the words in the images, read by the real engine on tiny synthetic images with drawn text, cached."""
from __future__ import annotations

import logging

import pytest
from PIL import Image, ImageDraw, ImageFont

import lab5.experiments.ocr as ocr
from lab5.data import load_dataset
from lab5.experiments.ocr import COLUMNS, image_words, read_image, with_words


def draw_words(path, text: str) -> None:
    img = Image.new("RGB", (520, 200), "white")
    ImageDraw.Draw(img).text((20, 30), text, fill="black", font=ImageFont.load_default(size=48))
    img.save(path, "JPEG", quality=95)


@pytest.fixture
def ds(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    draw_words(root / "data" / "1.jpg", "DOGS ARE\nFOOD")  # the other images are plain colours: no words
    (root / "data" / "2.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # the engine cannot read it
    return load_dataset(root)  # the dataset check reads texts and lists images; it does not decode them


def test_an_image_with_drawn_words_gives_them_and_a_plain_one_none(ds):
    words = read_image(ds.image_path("1"))
    assert "DOGS" in words["words"].upper() and words["boxes"] >= 1 and 0.5 <= words["confidence"] <= 1
    assert read_image(ds.image_path("3")) == {"words": "", "confidence": 0.0, "boxes": 0, "error": ""}


def test_an_unreadable_image_gets_no_words_is_counted_and_named(ds, caplog):
    caplog.set_level(logging.WARNING, logger="lab5")
    table = image_words(ds, ds.root.parent / "cache")
    assert list(table.columns) == COLUMNS and list(table.guid) == list(ds.all.guid)
    bad = table.set_index("guid").loc["2"]
    assert bad.words == "" and bad.boxes == 0 and bad.error
    assert "1 of 8 images could not be read" in caplog.text and "guid 2" in caplog.text


def test_the_words_are_cached_and_read_back_identically_without_the_engine(ds, monkeypatch):
    cache = ds.root.parent / "cache"
    first = image_words(ds, cache, jobs=2)  # two worker processes give the same table as one
    assert first.equals(image_words(ds, cache.with_name("other"), jobs=1))
    monkeypatch.setattr(ocr, "read_image", lambda path: pytest.fail("read again"))
    again = image_words(ds, cache)
    assert again.equals(first)
    (csv,) = (cache / "ocr").glob("words-*.csv")
    assert "DOGS" in csv.read_text().upper()  # a table a person can read


def test_a_damaged_cache_file_is_rebuilt_with_a_warning(ds, caplog):
    cache = ds.root.parent / "cache"
    first = image_words(ds, cache)
    (csv,) = (cache / "ocr").glob("words-*.csv")
    csv.write_text(csv.read_text().replace("DOGS", "CATS"))
    caplog.set_level(logging.WARNING, logger="lab5")
    assert image_words(ds, cache).equals(first)
    assert "is corrupt or from another version (checksum mismatch); rebuilding it" in caplog.text


def test_words_are_appended_only_from_two_words_on_and_cut_at_the_maximum():
    texts = ["tweet a", "tweet b", "tweet c"]
    words = ["", "ONE", "ONE TWO THREE"]
    assert with_words(texts, words) == ["tweet a", "tweet b", "tweet c | ONE TWO THREE"]
    assert with_words(texts, words, max_words=2)[2] == "tweet c | ONE TWO"


def test_words_by_class_counts_the_pairs_whose_image_has_words():
    import pandas as pd

    from lab5.experiments.ocr import words_by_class

    table = words_by_class(pd.Series(["positive", "positive", "negative", "negative"]),
                           pd.Series(["A SIGN HERE", "", "NO", "DOGS ARE NOT FOOD"]))
    assert table.loc["positive"].tolist() == [2, 1, 0.5, 3.0]
    assert table.loc["negative"].tolist() == [2, 1, 0.5, 4.0]


def test_cached_only_reads_nothing_and_says_none_until_the_words_are_cached(ds, monkeypatch):
    cache = ds.root.parent / "cache"
    monkeypatch.setattr(ocr, "read_image", lambda path: pytest.fail("read"))
    assert image_words(ds, cache, cached_only=True) is None
    monkeypatch.undo()
    assert image_words(ds, cache, cached_only=True) is None and not (cache / "ocr").exists()


def test_the_command_writes_the_counts_by_class_with_their_provenance_and_no_words(ds, monkeypatch, tmp_path):
    import json

    import pandas as pd

    monkeypatch.setenv("LAB5_DATA", str(ds.root))
    out = tmp_path / "by_class.csv"
    assert ocr.main(["--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["class", "pairs", "with words", "share", "mean words, when any"]
    assert table.pairs.sum() == 6 and table["with words"].sum() == 1  # guid 1, a positive pair
    assert "DOGS" not in out.read_text().upper()
    assert json.loads(out.with_suffix(".json").read_text())["command"] == f"python -m lab5.experiments.ocr --out {out}"
