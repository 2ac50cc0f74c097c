"""lab5.data: labels files, text decoding, images, dataset validation."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from lab5.config import ConfigError
from lab5.data import (DataError, check_images, decode_text, encoder_texts, load_dataset, load_image,
                       normalize_tweet, read_labels, resolve_data_dir)

from conftest import jpeg_bytes

INVALID_BOTH = b"ok \x80 end"  # a lone 0x80 is valid neither in UTF-8 nor in GB18030


# --------------------------------------------------------------------------- texts
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


@pytest.mark.parametrize("raw", [INVALID_BOTH, b"\xff\xfe\xfd"])
def test_bytes_invalid_in_both_encodings_become_replacement_chars_and_are_counted(raw):
    for enc in ("utf-8", "gb18030"):
        with pytest.raises(UnicodeDecodeError):
            raw.decode(enc)
    d = decode_text(raw)
    assert d.encoding == "gb18030+replace"
    assert "\ufffd" in d.text
    assert d.replaced == d.text.count("\ufffd") >= 1


def test_dataset_counts_encodings_and_replaced_bytes(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    (root / "data" / "1.txt").write_bytes("你好…".encode("gb18030"))
    (root / "data" / "2.txt").write_bytes(INVALID_BOTH)
    ds = load_dataset(root)
    enc = ds.encodings()
    assert enc["gb18030"] == 1 and enc["gb18030+replace"] == 1 and enc["utf-8"] == 6
    row = ds.train.set_index("guid")
    assert row.loc["1", "text"] == "你好…"
    assert row.loc["2", "replaced"] == 1 and row.loc["2", "encoding"] == "gb18030+replace"
    assert int(ds.all.replaced.sum()) == 1


def test_empty_text_is_accepted_and_reported(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    (root / "data" / "3.txt").write_bytes(b"  \r\n\n")
    (root / "data" / "8.txt").write_bytes(b"")
    ds = load_dataset(root)
    assert ds.empty_texts == ["3", "8"]
    assert ds.train.set_index("guid").loc["3", "text"] == ""
    assert len(ds.train) == 6 and len(ds.test) == 2


# --------------------------------------------------------------------------- labels files
def test_bom_crlf_and_trailing_blank_lines_in_train_file_load_fine(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "train.txt").write_bytes(b"\xef\xbb\xbfguid,tag\r\n1,positive\r\n2,neutral\r\n\r\n3,negative\r\n\r\n\r\n")
    ds = load_dataset(root)
    assert list(ds.train.guid) == ["1", "2", "3"]
    assert list(ds.train.tag) == ["positive", "neutral", "negative"]
    assert list(ds.train.label) == [2, 1, 0]


def test_upper_case_and_padded_tags_and_guids_are_normalised(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("GUID, Tag\n 1 , POSITIVE\n2,Neutral \n3,  negative\n")
    df = read_labels(p)
    assert list(df.guid) == ["1", "2", "3"]
    assert list(df.tag) == ["positive", "neutral", "negative"]
    t = tmp_path / "test.txt"
    t.write_text("guid,tag\n4,NULL\n")
    assert list(read_labels(t, test=True).label) == [-1]


def test_missing_header_raises_data_error_naming_the_file(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("1,positive\n2,neutral\n")
    with pytest.raises(DataError) as e:
        read_labels(p)
    assert str(p) in str(e.value) and "header" in str(e.value)


def test_unknown_tag_raises_data_error_naming_the_guid(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("guid,tag\n1,positive\n42,happy\n")
    with pytest.raises(DataError) as e:
        read_labels(p)
    msg = str(e.value)
    assert "guid 42" in msg and "'happy'" in msg and ":3:" in msg


def test_test_file_tags_must_be_null(tmp_path):
    p = tmp_path / "test_without_label.txt"
    p.write_text("guid,tag\n5,positive\n")
    with pytest.raises(DataError, match="guid 5"):
        read_labels(p, test=True)


def test_duplicate_guid_raises_data_error_naming_both_lines(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("guid,tag\n7,positive\n8,neutral\n7,negative\n")
    with pytest.raises(DataError) as e:
        read_labels(p)
    msg = str(e.value)
    assert "guid 7" in msg and "duplicate" in msg and "line 2" in msg


def test_guid_in_both_train_and_test_is_refused(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "test_without_label.txt").write_text("guid,tag\n2,null\n4,null\n")
    with pytest.raises(DataError, match="guid 2: listed in both"):
        load_dataset(root)


def test_guid_without_text_file_is_named(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    (root / "data" / "4.txt").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert e.value.problems == [f"guid 4 (train.txt): text file missing: {root / 'data' / '4.txt'}"]


def test_guid_without_jpg_is_named(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    (root / "data" / "7.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert len(e.value.problems) == 1
    assert "guid 7" in e.value.problems[0] and "test_without_label.txt" in e.value.problems[0]
    assert "image file missing" in e.value.problems[0]


def test_many_problems_of_one_kind_are_listed_briefly_and_counted(dataset_factory):
    root = dataset_factory(n_train=9, n_test=3)
    for g in range(1, 10):
        (root / "data" / f"{g}.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    lines = e.value.problems
    assert len(lines) == 6
    assert all("image file missing" in line for line in lines[:5])
    assert lines[5] == "... and 4 more: missing images"


def test_wrong_data_dir_raises_a_one_line_data_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "nowhere")
    assert len(e.value.problems) == 1 and "\n" not in str(e.value)
    assert str(tmp_path / "nowhere") in str(e.value) and "LAB5_DATA" in str(e.value)


def test_data_dir_defaults_to_lab5_data_env(tmp_path, monkeypatch, dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    monkeypatch.setenv("LAB5_DATA", str(root))
    assert resolve_data_dir(None) == root
    assert len(load_dataset().train) == 3


def test_unlisted_pairs_are_counted(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "data" / "99.txt").write_text("stray")
    (root / "data" / "99.jpg").write_bytes(jpeg_bytes())
    assert load_dataset(root).unlisted == 1


def test_unreadable_text_file_is_reported(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    p = root / "data" / "2.txt"
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running with privileges that read a mode-000 file")
        with pytest.raises(DataError, match="guid 2: text file .* cannot be read"):
            load_dataset(root)
    finally:
        os.chmod(p, 0o644)


# --------------------------------------------------------------------------- images
def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_truncated_jpeg_raises_data_error_naming_guid_and_path(tmp_path):
    p = _write(tmp_path / "5.jpg", jpeg_bytes(noise=1)[:300])
    for min_side in (None, 8):
        with pytest.raises(DataError) as e:
            load_image(p, "5", min_side)
        assert "guid 5" in str(e.value) and str(p) in str(e.value)


def test_non_image_jpg_raises_data_error_naming_guid_and_path(tmp_path):
    p = _write(tmp_path / "6.jpg", b"<html>not an image</html>")
    with pytest.raises(DataError) as e:
        load_image(p, "6")
    assert "guid 6" in str(e.value) and str(p) in str(e.value) and "corrupt" in str(e.value)


def test_missing_image_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="guid 9: image file missing"):
        load_image(tmp_path / "9.jpg", "9")


@pytest.mark.parametrize("defect", ["truncated", "not-an-image"])
def test_check_images_reports_bad_images_with_guid_and_path(dataset_factory, defect):
    root = dataset_factory(n_train=6, n_test=2)
    p = root / "data" / "3.jpg"
    p.write_bytes(jpeg_bytes(noise=3)[:250] if defect == "truncated" else b"GIF89a? no, just text")
    ds = load_dataset(root)  # presence only: decoding is check_images' job
    with pytest.raises(DataError) as e:
        check_images(ds)
    assert len(e.value.problems) == 1
    assert "guid 3" in e.value.problems[0] and str(p) in e.value.problems[0]


def test_check_images_reports_sizes_and_modes(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "data" / "2.jpg").write_bytes(jpeg_bytes(size=(64, 48), mode="L"))
    rep = check_images(load_dataset(root))
    assert rep.count == 4
    assert rep.min_size == (32, 32) and rep.max_size == (64, 48)
    assert rep.modes == {"RGB": 3, "L": 1}


def test_png_bytes_named_jpg_load_as_rgb(tmp_path):
    buf = io.BytesIO()
    Image.new("RGBA", (20, 10), (255, 0, 0, 128)).save(buf, "PNG")
    p = _write(tmp_path / "1.jpg", buf.getvalue())
    for min_side in (None, 4):
        img = load_image(p, "1", min_side)
        assert img.mode == "RGB" and img.size == (20, 10)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_load_as_rgb(tmp_path, mode):
    p = _write(tmp_path / "1.jpg", jpeg_bytes((200, 100, 50), size=(40, 40), mode=mode))
    assert Image.open(p).mode == mode
    img = load_image(p, "1")
    assert img.mode == "RGB" and img.size == (40, 40)


def test_min_side_decodes_a_reduced_jpeg_no_smaller_than_asked(tmp_path):
    p = _write(tmp_path / "1.jpg", jpeg_bytes(size=(256, 128), noise=0))
    img = load_image(p, "1", min_side=32)
    assert img.mode == "RGB"
    assert min(img.size) >= 32 and img.size[0] < 256


def test_image_above_decompression_bomb_limit_raises_data_error(tmp_path, monkeypatch, dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # the 32x32 images are 1024 pixels: over the limit
    p = root / "data" / "1.jpg"
    with pytest.raises(DataError) as e:
        load_image(p, "1")
    assert "guid 1" in str(e.value) and "too large" in str(e.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # more than twice over: PIL's hard error
    with pytest.raises(DataError, match="too large"):
        load_image(p, "1")
    with pytest.raises(DataError) as e:
        check_images(load_dataset(root))
    assert len(e.value.problems) == 4 and all("too large" in line for line in e.value.problems)


def test_unreadable_image_raises_data_error(tmp_path):
    p = _write(tmp_path / "1.jpg", jpeg_bytes())
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running with privileges that read a mode-000 file")
        with pytest.raises(DataError, match="guid 1: image .* cannot be read"):
            load_image(p, "1")
    finally:
        os.chmod(p, 0o644)


# --------------------------------------------------------------------------- tweet normalisation
@pytest.mark.parametrize("raw, clean", [
    ("RT @AmitSwami77: The conspirators have an evil eye &amp; more! #WeDemandSafety4Bapuji http://t.co/N8…",
     "The conspirators have an evil eye & more! We Demand Safety 4 Bapuji http"),
    ("@NYSE is looking a little despondent today...??? http://t.co/o5xiKyJgT7", "@user is looking a little despondent today...??? http"),
    ("blue sky & snow at #ualbertafarm #UAlberta", "blue sky & snow at ualbertafarm U Alberta"),
    ("#happy_days   with\n@Kokkie70 @63sjaak", "happy days with @user @user"),
    ("#廃墟 #写真好きな人と繋がりたい", "廃墟 写真好きな人と繋がりたい"),
    ("plain text stays", "plain text stays"),
])
def test_normalize_tweet_rewrites_links_handles_retweets_and_hashtags(raw, clean):
    assert normalize_tweet(raw) == clean


def test_encoder_texts_keeps_texts_unless_asked_and_refuses_unknown_modes():
    texts = ["RT @a: hi http://x.y", "#GoodDay"]
    assert encoder_texts(texts, "none") == texts
    assert encoder_texts(texts, "tweet") == ["hi http", "Good Day"]
    with pytest.raises(ConfigError, match="unknown --text-clean 'emoji'"):
        encoder_texts(texts, "emoji")
