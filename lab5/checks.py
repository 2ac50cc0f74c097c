"""Checks notebooks run on their own results, so that ``pytest --nbval`` holds on any CPU yet fails on a
real regression: each headline number is checked within an explicit tolerance (rounding differs between CPUs).
"""
from __future__ import annotations

import re

from .data import Dataset
from .outputs import is_course_data

#: the line every check prints (the same on every machine where it passes): the only place a notebook output that
#: nbval compares may show a number computed from training (``tests/test_notebook_outputs.py`` holds them to it)
CHECK_LINE = re.compile(r".+: (within \S+ of the committed \S+|at least \S+|at most \S+|"
                        r"\d+ of \d+ folds, as committed \(a fold within \S+ is a tie\)|"
                        r"not checked \(committed values are for the course data\))")


class RegressionError(Exception):
    """A result moved further from its committed value than its stated tolerance."""


class Expectations:
    """Committed reference values of one dataset's results; checked only on the course data."""

    def __init__(self, ds: Dataset):
        self.active = is_course_data(ds)

    def close(self, what: str, value: float, expected: float, tol: float) -> None:
        """``value`` must lie within ``tol`` of the committed ``expected``."""
        self._check(what, abs(float(value) - expected) <= tol, f"within {tol} of the committed {expected}",
                    f"is {float(value):.4f}, more than {tol} from the committed {expected}")

    def at_least(self, what: str, value: float, minimum: float) -> None:
        """``value`` must be at least ``minimum``."""
        self._check(what, float(value) >= minimum, f"at least {minimum}", f"is {float(value):.4f}, below the required {minimum}")

    def at_most(self, what: str, value: float, maximum: float) -> None:
        """``value`` must be at most ``maximum``."""
        self._check(what, float(value) <= maximum, f"at most {maximum}", f"is {float(value):.4f}, above the allowed {maximum}")

    def folds_won(self, what: str, differences, won: int, tol: float = 0.005) -> None:
        """The committed count ``won`` of folds beating the control must fit ``differences`` on this machine:
        a fold within ``tol`` of a tie may go either way.
        """
        d = [float(x) for x in differences]
        surely, maybe = sum(x > tol for x in d), sum(x > -tol for x in d)
        self._check(what, surely <= won <= maybe, f"{won} of {len(d)} folds, as committed (a fold within {tol} is a tie)",
                    f"won {surely} to {maybe} of {len(d)} folds (ties within {tol} either way), not the committed {won}")

    def _check(self, what: str, ok: bool, passed: str, failed: str) -> None:
        if not self.active:
            print(f"{what}: not checked (committed values are for the course data)")
        elif not ok:
            raise RegressionError(f"{what} {failed}")
        else:
            print(f"{what}: {passed}")

    def cv_means(self, cv, committed: dict[str, tuple[float, float]], acc_tol: float = 0.02, f1_tol: float = 0.03) -> None:
        """Each model's mean CV accuracy and macro-F1 must lie within tolerance of its committed values."""
        means = cv.groupby("model", sort=False)[["accuracy", "macro_f1"]].mean()
        for m, (acc, f1) in committed.items():
            self.close(f"{m}: CV accuracy", means.loc[m, "accuracy"], acc, tol=acc_tol)
            self.close(f"{m}: CV macro-F1", means.loc[m, "macro_f1"], f1, tol=f1_tol)
