"""lab5.data: labels files, dataset validation (every problem named, nothing dropped) and the dataset's identity."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from synthetic import jpeg_bytes

from lab5.data import (
    LABEL2ID,
    LABELS,
    Dataset,
    guid_key,
    load_dataset,
    parse_labels,
    read_labels,
    resolve_data_dir,
    utf8_ignore_changes,
)
from lab5.errors import DataError

INVALID_BOTH = b"ok \x80 end"  # a lone 0x80 is valid neither in UTF-8 nor in GB18030


def test_label_ids_are_negative_neutral_positive():
    assert LABELS == ("negative", "neutral", "positive")
    assert LABEL2ID == {"negative": 0, "neutral": 1, "positive": 2}


def test_guid_key_sorts_numeric_guids_numerically_then_the_others():
    assert sorted(["10", "b", "9", "a", "100"], key=guid_key) == ["9", "10", "100", "a", "b"]


# --------------------------------------------------------------------------- texts in a dataset
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


def test_utf8_ignore_changes_counts_the_texts_that_reading_would_lose_characters_of(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    assert utf8_ignore_changes(load_dataset(root)) == 0  # plain UTF-8 texts read the same either way
    (root / "data" / "1.txt").write_bytes("你好…".encode("gb18030"))  # GBK bytes: UTF-8 drops or garbles them
    (root / "data" / "2.txt").write_bytes(INVALID_BOTH)  # U+FFFD here, nothing under errors='ignore'
    (root / "data" / "3.txt").write_bytes("\ufeffgood day".encode("utf-8"))  # a BOM alone is no loss
    (root / "data" / "7.txt").write_bytes("caf\u00e9 ok".encode("gb18030"))  # a test row counts too
    ds = load_dataset(root)
    assert utf8_ignore_changes(ds) == 3


def test_empty_text_is_accepted_and_reported(dataset_factory):
    root = dataset_factory(n_train=6, n_test=2)
    (root / "data" / "3.txt").write_bytes(b"  \r\n\n")
    (root / "data" / "8.txt").write_bytes(b"")
    ds = load_dataset(root)
    assert ds.empty_texts == ["3", "8"]
    assert ds.train.set_index("guid").loc["3", "text"] == ""
    assert len(ds.train) == 6 and len(ds.test) == 2


def test_all_holds_train_then_test_rows_in_file_order(dataset_factory):
    ds = load_dataset(dataset_factory(n_train=3, n_test=2))
    assert list(ds.all.guid) == ["1", "2", "3", "4", "5"]
    assert list(ds.all.split) == ["train"] * 3 + ["test"] * 2
    assert list(ds.all.label) == [2, 1, 0, -1, -1]
    assert ds.all.text[0] == "what a lovely sunny day #1"


def test_rows_of_guids_come_in_the_order_asked_and_labels_only_from_train(dataset_factory):
    ds = load_dataset(dataset_factory(n_train=6, n_test=2))
    guids = ["7", "3", "1"]  # a test guid among training guids, out of file order
    rows = ds.rows(guids)
    assert rows.index.tolist() == guids
    assert rows.text.tolist() == [ds.all.text[ds.all.guid == g].item() for g in guids]
    assert rows.label.tolist() == [-1, *(LABEL2ID[ds.train.tag[ds.train.guid == g].item()] for g in guids[1:])]
    assert ds.rows(["4", "2"], labelled=True).label.tolist() == [LABEL2ID["positive"], LABEL2ID["neutral"]]
    with pytest.raises(KeyError):
        ds.rows(guids, labelled=True)  # guid 7 has no label
    assert ds.rows([], labelled=True).empty


def test_image_paths_map_guids_to_their_jpgs(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    ds = load_dataset(root)
    assert ds.image_paths() == {g: root / "data" / f"{g}.jpg" for g in ("1", "2", "3", "4")}
    assert ds.image_paths(["3"]) == {"3": root / "data" / "3.jpg"}
    assert ds.text_path("2") == root / "data" / "2.txt"
    assert ds.image("2").size == (32, 32)


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


def test_parse_labels_reads_text_and_names_the_given_path_in_errors():
    df = parse_labels("guid,tag\n5,negative\n6,positive\n", "somewhere/train.txt")
    assert df.to_dict("list") == {"guid": ["5", "6"], "tag": ["negative", "positive"], "label": [0, 2]}
    with pytest.raises(DataError, match=r"somewhere/train.txt:2: malformed line '5' \(expected guid,tag\)"):
        parse_labels("guid,tag\n5\n", "somewhere/train.txt")
    with pytest.raises(DataError, match="x.txt: missing header 'guid,tag'"):
        parse_labels("\n\n", "x.txt")


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


def test_labels_file_that_is_not_utf8_or_missing_is_a_data_error(tmp_path):
    p = tmp_path / "train.txt"
    p.write_bytes("guid,tag\n1,positive\n".encode("utf-16"))
    with pytest.raises(DataError, match=f"{p}: not UTF-8 text"):
        read_labels(p)
    with pytest.raises(DataError, match="labels file not found"):
        read_labels(tmp_path / "nothing.txt")


def test_guid_in_both_train_and_test_is_refused(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "test_without_label.txt").write_text("guid,tag\n2,null\n4,null\n")
    with pytest.raises(DataError, match="guid 2: listed in both"):
        load_dataset(root)


def test_dataset_without_a_test_file_has_an_empty_test_frame(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "test_without_label.txt").unlink()
    ds = load_dataset(root)
    assert len(ds.test) == 0 and list(ds.test.columns)[:3] == ["guid", "tag", "label"]
    assert list(ds.all.guid) == ["1", "2", "3"]
    assert ds.unlisted == 1  # the pair of guid 4 is still in data/


# --------------------------------------------------------------------------- missing and unreadable files
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
    assert e.value.problems == [f"guid 7 (test_without_label.txt): image file missing: {root / 'data' / '7.jpg'}"]


def test_many_problems_of_one_kind_are_listed_briefly_and_counted(dataset_factory):
    root = dataset_factory(n_train=9, n_test=3)
    for g in range(1, 10):
        (root / "data" / f"{g}.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    lines = e.value.problems
    assert len(lines) == 6
    assert [line.split(" (")[0] for line in lines[:5]] == [f"guid {g}" for g in range(1, 6)]
    assert all("image file missing" in line for line in lines[:5])
    assert lines[5] == "... and 4 more: missing images"


def test_wrong_data_dir_raises_a_one_line_data_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "nowhere")
    assert len(e.value.problems) == 1 and "\n" not in str(e.value)
    assert str(tmp_path / "nowhere") in str(e.value) and "LAB5_DATA" in str(e.value)


def test_data_dir_defaults_to_lab5_data_env(monkeypatch, dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    monkeypatch.setenv("LAB5_DATA", str(root))
    assert resolve_data_dir(None) == root
    assert len(load_dataset().train) == 3


def test_data_dir_defaults_to_data_in_the_current_folder_without_lab5_data(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1, name="data")  # the test runs in its tmp folder
    assert resolve_data_dir(None) == Path.cwd() / "data" == root
    assert list(load_dataset().train.guid) == ["1", "2", "3"]


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


def test_load_dataset_writes_nothing(dataset_factory, tmp_path):
    root = dataset_factory(n_train=6, n_test=2)
    before = sorted(p for p in tmp_path.rglob("*"))
    load_dataset(root)
    assert sorted(p for p in tmp_path.rglob("*")) == before


# --------------------------------------------------------------------------- identity
def _ds(train: pd.DataFrame, test_guids=()) -> Dataset:
    test = pd.DataFrame({"guid": list(test_guids), "tag": ["null"] * len(test_guids), "label": [-1] * len(test_guids)})
    return Dataset(Path("nowhere"), train, test, [], 0)


def test_labels_fingerprint_ignores_row_order_but_not_tags():
    a = _ds(pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "neutral"]}))
    b = _ds(pd.DataFrame({"guid": ["2", "1"], "tag": ["neutral", "positive"]}))
    c = _ds(pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "negative"]}))
    assert a.labels_fingerprint == b.labels_fingerprint != c.labels_fingerprint
    assert len(a.labels_fingerprint) == 16 and int(a.labels_fingerprint, 16) >= 0


def test_dataset_fingerprint_follows_the_labels_and_the_test_guids_in_order():
    train = pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "neutral"]})
    base = _ds(train, ["3", "4"])
    assert _ds(train.iloc[::-1], ["3", "4"]).fingerprint == base.fingerprint  # labelled rows: order does not matter
    assert _ds(train, ["4", "3"]).fingerprint != base.fingerprint  # the test file's order does
    assert _ds(train, ["3"]).fingerprint != base.fingerprint
    assert base.labels_fingerprint == _ds(train, ["9"]).labels_fingerprint != base.fingerprint


def test_bom_and_line_endings_leave_the_fingerprints_unchanged(dataset_factory):
    a = dataset_factory(n_train=6, n_test=2)
    b = dataset_factory(n_train=6, n_test=2)
    (b / "train.txt").write_bytes(b"\xef\xbb\xbf" + (b / "train.txt").read_bytes().replace(b"\n", b"\r\n"))
    da, db = load_dataset(a), load_dataset(b)
    assert (da.labels_fingerprint, da.fingerprint) == (db.labels_fingerprint, db.fingerprint)
