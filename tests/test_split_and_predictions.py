"""lab5.data: the stored validation split and the predictions file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lab5.data import (LABELS, SPLITS_DIR, DataError, format_predictions, get_split, labels_fingerprint,
                       load_dataset, make_split, read_labels, write_predictions)

from conftest import REAL_DATA_DIR


# --------------------------------------------------------------------------- the split
def test_get_split_draws_a_stratified_split_and_stores_it(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    split = get_split(ds, splits_dir=tmp_path / "sp")
    assert split.path.parent == tmp_path / "sp" and split.path.is_file()
    assert split.path.name == f"val-{labels_fingerprint(ds.train)}.txt"
    stored = [ln for ln in split.path.read_text().splitlines() if ln and not ln.startswith("#")]
    assert stored == list(split.val)
    assert len(split.val) == 6  # a fifth of 30 rows when there are fewer than 500
    tags = ds.train.set_index("guid").loc[list(split.val), "tag"]
    assert tags.value_counts().to_dict() == {"positive": 2, "neutral": 2, "negative": 2}


def test_split_covers_all_labelled_guids_disjointly_and_avoids_test(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    split = get_split(ds, splits_dir=tmp_path / "sp")
    assert not set(split.train) & set(split.val)
    assert sorted(split.train + split.val, key=int) == sorted(ds.train.guid, key=int)
    assert not (set(split.train) | set(split.val)) & set(ds.test.guid)


def test_get_split_twice_returns_the_same_object(dataset_factory, tmp_path):
    root = dataset_factory(n_train=30, n_test=4)
    a = get_split(load_dataset(root), splits_dir=tmp_path / "sp")
    b = get_split(load_dataset(root), splits_dir=tmp_path / "sp")
    assert a is b


def test_stored_split_is_reused_not_redrawn(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    sp = tmp_path / "sp"
    sp.mkdir()
    chosen = ["1", "2", "3", "4"]
    (sp / f"val-{labels_fingerprint(ds.train)}.txt").write_text("# hand-made\n" + "\n".join(chosen) + "\n")
    split = get_split(ds, splits_dir=sp)
    assert list(split.val) == chosen and len(split.train) == 26


def test_stored_split_naming_an_unknown_guid_raises_data_error(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    sp = tmp_path / "sp"
    sp.mkdir()
    path = sp / f"val-{labels_fingerprint(ds.train)}.txt"
    path.write_text("1\n2\n9999\n")
    with pytest.raises(DataError) as e:
        get_split(ds, splits_dir=sp)
    assert str(path) in str(e.value) and "9999" in str(e.value)


def test_labels_fingerprint_ignores_row_order_but_not_tags():
    a = pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "neutral"]})
    b = pd.DataFrame({"guid": ["2", "1"], "tag": ["neutral", "positive"]})
    c = pd.DataFrame({"guid": ["1", "2"], "tag": ["positive", "negative"]})
    assert labels_fingerprint(a) == labels_fingerprint(b) != labels_fingerprint(c)


def test_make_split_is_seeded():
    df = pd.DataFrame({"guid": [str(i) for i in range(60)], "tag": [LABELS[i % 3] for i in range(60)],
                       "label": [i % 3 for i in range(60)]})
    assert make_split(df) == make_split(df.copy())
    assert make_split(df, seed=0) != make_split(df, seed=1)


def test_split_of_labels_with_a_single_member_class_is_drawn(dataset_factory, tmp_path):
    tags = ["positive"] * 12 + ["neutral"] * 7 + ["negative"]
    ds = load_dataset(dataset_factory(n_train=20, n_test=1, tags=tags))
    split = get_split(ds, splits_dir=tmp_path / "sp")
    assert len(split.val) == 4 and not set(split.val) & set(split.train)


def _committed_split_files():
    return sorted(SPLITS_DIR.glob("val-*.txt"))


def test_committed_course_split_has_500_unique_guids():
    files = _committed_split_files()
    assert files, f"no committed split in {SPLITS_DIR}"
    for f in files:
        guids = [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(guids) == 500 and len(set(guids)) == 500
        assert all(g.isdigit() for g in guids)
        assert guids == sorted(guids, key=int)


def test_committed_split_is_stratified_on_the_real_data():
    if not REAL_DATA_DIR or not (Path(REAL_DATA_DIR) / "train.txt").is_file():
        pytest.skip("LAB5_DATA does not point at the course data")
    ds = load_dataset(REAL_DATA_DIR)
    key = labels_fingerprint(ds.train)
    path = SPLITS_DIR / f"val-{key}.txt"
    assert path.is_file(), f"no committed split for labels fingerprint {key}"
    split = get_split(ds, splits_dir=SPLITS_DIR)
    assert len(split.val) == 500
    assert not set(split.val) & set(ds.test.guid)
    assert not set(split.val) & set(split.train)
    share_all = ds.train.tag.value_counts(normalize=True)
    share_val = ds.train.set_index("guid").loc[list(split.val), "tag"].value_counts(normalize=True)
    for tag in LABELS:
        assert abs(share_all.get(tag, 0) - share_val.get(tag, 0)) <= 0.02, tag


# --------------------------------------------------------------------------- predictions
TEST = pd.DataFrame({"guid": ["30", "4", "17"], "tag": ["null"] * 3, "label": [-1] * 3})


def test_format_predictions_keeps_test_order():
    text = format_predictions(TEST, {"17": "neutral", "30": "positive", "4": "negative"})
    assert text == "guid,tag\n30,positive\n4,negative\n17,neutral\n"


@pytest.mark.parametrize("pred, what", [
    ({"30": "positive", "4": "negative"}, "1 guids missing"),
    ({"30": "positive", "4": "negative", "17": "neutral", "99": "neutral"}, "1 unknown"),
    ({"30": "positive", "4": "negative", "17": "null"}, "1 invalid tags"),
    ({"30": "positive", "4": "negative", "17": "Neutral"}, "1 invalid tags"),
])
def test_format_predictions_refuses_missing_extra_and_invalid(pred, what):
    with pytest.raises(DataError, match=what):
        format_predictions(TEST, pred)


def test_write_predictions_round_trips_through_the_labels_reader(tmp_path):
    out = write_predictions(TEST, {"17": "neutral", "30": "positive", "4": "negative"}, tmp_path / "sub" / "p.txt")
    df = read_labels(out)
    assert list(df.guid) == ["30", "4", "17"] and list(df.tag) == ["positive", "negative", "neutral"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_leaves_an_old_predictions_file_unchanged(tmp_path):
    out = tmp_path / "p.txt"
    old = b"guid,tag\n30,neutral\n4,neutral\n17,neutral\n"
    out.write_bytes(old)
    with pytest.raises(DataError):
        write_predictions(TEST, {"30": "positive", "4": "negative"}, out)
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt"]
