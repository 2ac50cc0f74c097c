"""lab5.splits: the one stored train/validation split (committed for the course data, cached for any other)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import REAL_DATA_DIR

import lab5.splits as S
from lab5.data import LABELS, Dataset, load_dataset
from lab5.errors import ConfigError, DataError
from lab5.splits import COMMITTED_SPLITS, get_split, make_split, split_path


def _stored(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


# --------------------------------------------------------------------------- drawn and stored in the cache
def test_get_split_draws_a_stratified_split_and_stores_it_in_the_cache(dataset_factory, isolated):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    split = get_split(ds)  # the cache defaults to LAB5_CACHE
    assert split.path == isolated["cache"] / "splits" / f"val-{ds.labels_fingerprint}.txt"
    assert split.path.is_file()
    assert _stored(split.path) == list(split.val)
    assert len(split.val) == 6  # a fifth of 30 rows when there are fewer than 500
    tags = ds.train.set_index("guid").loc[list(split.val), "tag"]
    assert tags.value_counts().to_dict() == {"positive": 2, "neutral": 2, "negative": 2}
    assert list(split.val) == sorted(split.val, key=int)


def test_get_split_stores_under_the_cache_it_is_given(dataset_factory, tmp_path, isolated):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    split = get_split(ds, tmp_path / "elsewhere")
    assert split.path == tmp_path / "elsewhere" / "splits" / f"val-{ds.labels_fingerprint}.txt" == split_path(ds, tmp_path / "elsewhere")
    assert split.path.is_file() and not (isolated["cache"] / "splits").exists()


def test_split_covers_all_labelled_guids_disjointly_and_avoids_test(dataset_factory):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    split = get_split(ds)
    assert not set(split.train) & set(split.val)
    assert sorted(split.train + split.val, key=int) == sorted(ds.train.guid, key=int)
    assert not (set(split.train) | set(split.val)) & set(ds.test.guid)
    assert list(split.train) == [g for g in ds.train.guid if g not in set(split.val)]  # train keeps file order


def test_second_get_split_reads_the_stored_split_instead_of_drawing_again(dataset_factory, monkeypatch):
    root = dataset_factory(n_train=30, n_test=4)
    first = get_split(load_dataset(root))
    monkeypatch.setattr(S, "make_split", lambda *a, **k: pytest.fail("drew a new split although one is stored"))
    second = get_split(load_dataset(root))
    assert second == first


def test_get_split_without_store_draws_the_same_split_and_writes_nothing(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    before = sorted(tmp_path.rglob("*"))
    drawn = get_split(ds, store=False)
    assert drawn.path is None
    assert sorted(tmp_path.rglob("*")) == before
    stored = get_split(ds)
    assert (stored.train, stored.val) == (drawn.train, drawn.val)
    assert get_split(ds, store=False) == stored  # once stored, it is read back (with its path)


def test_stored_split_is_reused_not_redrawn(dataset_factory, isolated):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    path = isolated["cache"] / "splits" / f"val-{ds.labels_fingerprint}.txt"
    path.parent.mkdir(parents=True)
    chosen = ["1", "2", "3", "4"]
    path.write_text("# hand-made\n" + "\n".join(chosen) + "\n")
    split = get_split(ds)
    assert list(split.val) == chosen and len(split.train) == 26 and split.path == path


@pytest.mark.parametrize("content, needle", [("1\n2\n9999\n", "9999"), ("1\n2\n2\n", "lists guids twice (e.g. ['2'])")])
def test_stored_split_that_does_not_match_the_labels_raises_data_error(dataset_factory, isolated, content, needle):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    path = split_path(ds)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DataError) as e:
        get_split(ds)
    assert str(path) in str(e.value) and needle in str(e.value) and "delete it" in str(e.value)


def test_changed_labels_get_a_split_of_their_own(dataset_factory):
    root = dataset_factory(n_train=30, n_test=4)
    first = get_split(load_dataset(root))
    (root / "train.txt").write_text((root / "train.txt").read_text().replace("\n1,positive\n", "\n1,negative\n"))
    second = get_split(load_dataset(root))
    assert second.path != first.path and first.path.is_file() and second.path.is_file()


# --------------------------------------------------------------------------- the draw
def _dataset(n: int, tags=None) -> Dataset:
    tags = tags or [LABELS[i % 3] for i in range(n)]
    train = pd.DataFrame({"guid": [str(i) for i in range(n)], "tag": tags, "label": [LABELS.index(t) for t in tags]})
    return Dataset(Path("nowhere"), train, train.iloc[:0], [], 0)


def test_make_split_is_seeded():
    ds = _dataset(60)
    assert make_split(ds) == make_split(_dataset(60))
    assert make_split(ds, seed=0) != make_split(ds, seed=1)
    assert len(make_split(ds)) == 12 and len(make_split(ds, val_size=9)) == 9


def test_split_of_labels_with_a_single_member_class_is_drawn(dataset_factory):
    tags = ["positive"] * 12 + ["neutral"] * 7 + ["negative"]
    ds = load_dataset(dataset_factory(n_train=20, n_test=1, tags=tags))
    split = get_split(ds)
    assert len(split.val) == 4 and not set(split.val) & set(split.train)


def test_fewer_than_two_labelled_rows_is_a_data_error():
    with pytest.raises(DataError, match="1 labelled rows; at least 2 are needed"):
        make_split(_dataset(1))


@pytest.mark.parametrize("n", [4, 5, 9])
def test_a_tiny_labels_file_keeps_rows_on_both_sides(n):
    val = make_split(_dataset(n))
    assert 0 < len(val) < n


@pytest.mark.parametrize("n", [2, 3])
def test_two_or_three_labelled_rows_give_a_split(n):
    val = make_split(_dataset(n))
    assert 0 < len(val) < n


# --------------------------------------------------------------------------- the committed course split
def _committed_split_files():
    return sorted(COMMITTED_SPLITS.glob("val-*.txt"))


def test_committed_course_split_has_500_unique_guids():
    files = _committed_split_files()
    assert files, f"no committed split in {COMMITTED_SPLITS}"
    for f in files:
        guids = _stored(f)
        assert len(guids) == 500 and len(set(guids)) == 500
        assert all(g.isdigit() for g in guids)
        assert guids == sorted(guids, key=int)


def test_a_committed_split_is_read_and_nothing_is_stored_in_the_cache(dataset_factory, tmp_path, monkeypatch, isolated):
    ds = load_dataset(dataset_factory(n_train=30, n_test=4))
    committed = tmp_path / "committed"
    committed.mkdir()
    (committed / f"val-{ds.labels_fingerprint}.txt").write_text("# committed\n5\n6\n7\n")
    monkeypatch.setattr(S, "COMMITTED_SPLITS", committed)
    split = get_split(ds)
    assert split.path == committed / f"val-{ds.labels_fingerprint}.txt" == split_path(ds)
    assert split.val == ("5", "6", "7") and not isolated["cache"].exists()


def test_committed_split_is_stratified_on_the_real_data():
    if not REAL_DATA_DIR or not (Path(REAL_DATA_DIR) / "train.txt").is_file():
        pytest.skip("LAB5_DATA does not point at the course data")
    ds = load_dataset(REAL_DATA_DIR)
    path = COMMITTED_SPLITS / f"val-{ds.labels_fingerprint}.txt"
    assert path.is_file(), f"no committed split for labels fingerprint {ds.labels_fingerprint}"
    split = get_split(ds)
    assert split.path == path
    assert len(split.val) == 500
    assert not set(split.val) & set(ds.test.guid)
    assert not set(split.val) & set(split.train)
    share_all = ds.train.tag.value_counts(normalize=True)
    share_val = ds.train.set_index("guid").loc[list(split.val), "tag"].value_counts(normalize=True)
    for tag in LABELS:
        assert abs(share_all.get(tag, 0) - share_val.get(tag, 0)) <= 0.02, tag


def test_a_training_subset_is_seeded_stratified_and_refuses_more_rows_than_there_are():
    labels = np.array([0] * 30 + [1] * 10 + [2] * 60)
    keep = S.training_subset(labels, 20, seed=0)
    assert len(keep) == 20 and len(set(keep)) == 20 and list(keep) == sorted(keep)
    assert np.bincount(labels[keep]).tolist() == [6, 2, 12]  # the classes' shares kept
    assert keep.tolist() == S.training_subset(labels, 20, seed=0).tolist()
    assert keep.tolist() != S.training_subset(labels, 20, seed=1).tolist()
    assert S.training_subset(labels, 0, seed=0).tolist() == list(range(100))  # 0: every row
    with pytest.raises(ConfigError, match="--train-rows 101 asks for more rows than the 100 there are"):
        S.training_subset(labels, 101, seed=0)


def test_a_draw_is_stratified_only_when_every_class_can_give_a_row_to_each_side():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    assert S.stratify_by(labels, 3) is labels and S.stratify_by(labels, 4) is labels
    assert S.stratify_by(labels, 2) is None and S.stratify_by(labels, 5) is None  # a side with fewer rows than classes
    assert S.stratify_by(np.array([0, 1, 1, 2, 2, 2]), 3) is None  # class 0 has one row: it cannot be on both sides
