"""lab5.text: decoding tweet bytes, VADER lexicon scores, text statistics."""
from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from lab5.errors import DataError
from lab5.plots.dataset import text_stats
from lab5.text import decode_text, lexicon_scores, read_text

INVALID_BOTH = b"ok \x80 end"  # a lone 0x80 is valid neither in UTF-8 nor in GB18030


# --------------------------------------------------------------------------- decoding
def test_utf8_text_is_decoded_as_utf8():
    d = decode_text("café ☕ naïve\n".encode("utf-8"))
    assert (d.text, d.encoding, d.replaced) == ("café ☕ naïve", "utf-8", 0)


def test_utf8_bom_is_stripped():
    d = decode_text(b"\xef\xbb\xbfhello")
    assert d.text == "hello" and d.encoding == "utf-8"


def test_gb18030_text_is_decoded_and_gbk_ellipsis_survives():
    raw = "你好…世界".encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    d = decode_text(raw)
    assert d.text == "你好…世界"
    assert d.encoding == "gb18030" and d.replaced == 0


@pytest.mark.parametrize("raw, text", [(INVALID_BOTH, "ok \ufffd end"), (b"\xff\xfe\xfd", "\ufffd\ue4c4")])
def test_bytes_invalid_in_both_encodings_become_replacement_chars_and_are_counted(raw, text):
    for enc in ("utf-8", "gb18030"):
        with pytest.raises(UnicodeDecodeError):
            raw.decode(enc)
    d = decode_text(raw)
    assert d.encoding == "gb18030+replace"
    assert d.text == text  # only the invalid byte is replaced: the valid GB18030 pair \xfe\xfd still decodes
    assert d.replaced == 1


def test_read_text_of_a_missing_file_is_a_data_error_naming_guid_and_path(tmp_path):
    with pytest.raises(DataError) as e:
        read_text(tmp_path / "4.txt", "4")
    assert e.value.problems == [f"guid 4: text file missing: {tmp_path / '4.txt'}"]


def test_read_text_of_an_unreadable_file_is_a_data_error(tmp_path):
    p = tmp_path / "2.txt"
    p.write_text("hello")
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running with privileges that read a mode-000 file")
        with pytest.raises(DataError, match="guid 2: text file .* cannot be read"):
            read_text(p, "2")
    finally:
        os.chmod(p, 0o644)


# --------------------------------------------------------------------------- lexicon scores
def test_vader_scores_each_text_once_per_process(monkeypatch):
    import lab5.text

    seen = []
    real = lab5.text._analyzer()

    class Counting:
        def polarity_scores(self, text):
            seen.append(text)
            return real.polarity_scores(text)

    lab5.text._vader.cache_clear()
    monkeypatch.setattr(lab5.text, "_analyzer", Counting)
    first = lexicon_scores(["so happy", "so sad", "so happy"])
    assert torch.equal(lexicon_scores(["so sad", "so happy"]), first[1:])
    assert sorted(seen) == ["so happy", "so sad"]
    lab5.text._vader.cache_clear()


def test_lexicon_scores_are_vaders_four_scores_per_text():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["what a lovely sunny day", "worst traffic jam ever", "the bus leaves at nine", ""]
    scores = lexicon_scores(texts)
    assert scores.shape == (4, 4)
    sia = SentimentIntensityAnalyzer()
    for row, text in zip(scores.tolist(), texts):
        d = sia.polarity_scores(text)
        assert row == pytest.approx([d["neg"], d["neu"], d["pos"], d["compound"]])
    compound = scores[:, 3]
    assert compound[0] > 0.3 and compound[1] < -0.3 and compound[2] == 0 and compound[3] == 0
    assert torch.allclose(scores[:3, :3].sum(1), torch.ones(3), atol=2e-3)  # neg + neu + pos = 1 for real text


# --------------------------------------------------------------------------- statistics
def test_text_stats_counts_words_hashtags_mentions_urls_emoji_and_retweets():
    frame = pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "neutral"], "encoding": ["utf-8", "gb18030"],
                          "text": ["RT @a: so #happy #sun http://x.y/z", "plain 😀 text 🌞"]})
    stats = text_stats(frame).set_index("guid")
    one, two = stats.loc["1"], stats.loc["2"]
    assert (one.hashtags, one.mentions, one.urls, one.retweet, one.words, one.emoji) == (2, 1, 1, 1, 6, 0)
    assert (two.hashtags, two.mentions, two.urls, two.retweet, two.words, two.emoji, two.chars) == (0, 0, 0, 0, 4, 2, 14)
    assert list(stats.tag) == ["positive", "neutral"] and list(stats.encoding) == ["utf-8", "gb18030"]
