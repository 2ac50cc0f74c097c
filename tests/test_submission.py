"""lab5.submission: the predictions file (checked, in the test file's order, written atomically) and agreement."""
from __future__ import annotations

import pandas as pd
import pytest

import lab5.submission as Sub
from lab5.data import read_labels
from lab5.errors import DataError
from lab5.explain import agreeing_rows, agreement, class_shares, read_predictions
from lab5.submission import (
    format_predictions,
    write_predictions,
)

TEST = pd.DataFrame({"guid": ["30", "4", "17"], "tag": ["null"] * 3, "label": [-1] * 3})
PREDICTED = {"17": "neutral", "30": "positive", "4": "negative"}


def test_format_predictions_keeps_test_order():
    assert format_predictions(TEST, PREDICTED) == "guid,tag\n30,positive\n4,negative\n17,neutral\n"


@pytest.mark.parametrize("pred, what", [
    ({"30": "positive", "4": "negative"}, r"1 guids missing \(e.g. \['17'\]\)"),
    ({"30": "positive", "4": "negative", "17": "neutral", "99": "neutral"}, r"1 unknown \(e.g. \['99'\]\)"),
    ({"30": "positive", "4": "negative", "17": "null"}, "1 invalid tags"),
    ({"30": "positive", "4": "negative", "17": "Neutral"}, "1 invalid tags"),
])
def test_format_predictions_refuses_missing_extra_and_invalid(pred, what):
    with pytest.raises(DataError, match=what):
        format_predictions(TEST, pred)


def test_write_predictions_round_trips_through_the_labels_reader(tmp_path):
    out = write_predictions(TEST, PREDICTED, tmp_path / "sub" / "p.txt")
    assert out == tmp_path / "sub" / "p.txt"
    df = read_labels(out)
    assert list(df.guid) == ["30", "4", "17"] and list(df.tag) == ["positive", "negative", "neutral"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    assert read_predictions(out).to_dict("list") == {"guid": ["30", "4", "17"], "tag": ["positive", "negative", "neutral"]}


def test_failed_write_leaves_an_old_predictions_file_unchanged(tmp_path):
    out = tmp_path / "p.txt"
    old = b"guid,tag\n30,neutral\n4,neutral\n17,neutral\n"
    out.write_bytes(old)
    with pytest.raises(DataError):
        write_predictions(TEST, {"30": "positive", "4": "negative"}, out)
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt"]


def test_predictions_that_do_not_parse_back_are_refused_with_a_data_error_not_an_assert(tmp_path, monkeypatch):
    """The check after formatting is a DataError (it holds under ``python -O`` too), and nothing is written."""
    monkeypatch.setattr(Sub, "format_predictions", lambda test, pred: "guid,tag\n4,negative\n30,positive\n17,neutral\n")
    with pytest.raises(DataError, match="do not parse back to the test guids; nothing written"):
        write_predictions(TEST, PREDICTED, tmp_path / "p.txt")
    assert not list(tmp_path.iterdir())


def test_read_predictions_accepts_a_bom_and_refuses_an_unknown_tag(tmp_path):
    p = tmp_path / "p.txt"
    p.write_bytes(b"\xef\xbb\xbfguid,tag\r\n1,positive\r\n")
    assert read_predictions(p).to_dict("list") == {"guid": ["1"], "tag": ["positive"]}
    p.write_text("guid,tag\n1,great\n")
    with pytest.raises(DataError, match="guid 1: unknown tag 'great'"):
        read_predictions(p)


# --------------------------------------------------------------------------- agreement
def _preds(guids, tags):
    return pd.DataFrame({"guid": guids, "tag": tags})


def test_agreement_is_the_share_of_rows_with_the_same_tag():
    a = _preds(["1", "2", "3", "4"], ["positive", "neutral", "negative", "positive"])
    b = _preds(["1", "2", "3", "4"], ["positive", "positive", "negative", "neutral"])
    assert agreement(a, b) == 0.5 and agreeing_rows(a, b) == 2
    assert agreement(a, a) == 1.0 and agreeing_rows(a, a) == 4
    assert agreeing_rows(_preds([], []), _preds([], [])) == 0
    assert agreement(_preds([], []), _preds([], [])) == 1.0


def test_agreement_is_none_when_the_guid_lists_differ():
    a = _preds(["1", "2"], ["positive", "neutral"])
    assert agreement(a, _preds(["2", "1"], ["neutral", "positive"])) is None  # same rows, another order
    assert agreement(a, _preds(["1", "2", "3"], ["positive", "neutral", "neutral"])) is None
    assert agreement(a, _preds(["1", "9"], ["positive", "neutral"])) is None
    assert agreeing_rows(a, _preds(["2", "1"], ["neutral", "positive"])) is None


# --------------------------------------------------------------------------- class shares
def test_class_shares_puts_tags_and_label_ids_side_by_side_in_label_order():
    t = class_shares({"labels": [2, 2, 0, 1], "predicted": ["positive", "positive", "positive", "negative", "positive"]})
    assert t.index.tolist() == ["negative", "neutral", "positive"]
    assert t.columns.tolist() == ["labels, n=4", "predicted, n=5"]
    assert t["labels, n=4"].tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert t["predicted, n=5"].tolist() == pytest.approx([0.2, 0.0, 0.8])  # a class never predicted is 0
    assert t.sum().tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("labels", [["positive", "great"], [0, 3], ["null"]])
def test_class_shares_refuses_what_is_no_class(labels):
    with pytest.raises(DataError, match="holds labels that are no class"):
        class_shares({"x": labels})
