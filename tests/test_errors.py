"""lab5.errors: user errors carry one line per problem; many problems of one kind are listed briefly and counted."""
from __future__ import annotations

import pytest

from lab5.errors import MAX_LISTED, ConfigError, DataError, Problems, UserError


def test_a_user_error_keeps_its_problems_one_per_line():
    assert DataError("one").problems == ["one"]
    e = ConfigError(["a", "b"])
    assert e.problems == ["a", "b"] and str(e) == "a\nb"
    assert issubclass(DataError, UserError) and not issubclass(DataError, ValueError)


def test_problems_lists_the_first_few_of_each_kind_and_counts_the_rest():
    p = Problems()
    for i in range(MAX_LISTED + 3):
        p.add("missing images", f"image {i}")
    p.add("bad tags", "tag x")
    assert p.lines() == [*(f"image {i}" for i in range(MAX_LISTED)), "... and 3 more: missing images", "tag x"]
    with pytest.raises(ConfigError) as e:
        p.raise_if_any(ConfigError)
    assert e.value.problems == p.lines()


def test_no_problems_raise_nothing():
    Problems().raise_if_any()
    assert Problems().lines() == []
