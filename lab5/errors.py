"""The user's mistakes, as exceptions the command line turns into one ``error:`` line and exit code 2."""
from __future__ import annotations

from collections import defaultdict

MAX_LISTED = 5  # problems of one kind listed one by one before they are counted


class UserError(Exception):
    """A mistake in what the user gave us; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(UserError, ValueError):
    """A bad option value (unknown model, encoder, device, a number out of range, ...)."""


class DataError(UserError):
    """A problem with the user's data; each problem line names the file and the guid."""


class EncoderUnavailable(Exception):
    """An encoder's weights are not on this machine; the message says how to get them."""


class Problems:
    """Collects problems by kind, so that many of one kind are listed briefly and counted."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, line: str) -> None:
        self.by_kind[kind].append(line)

    def lines(self) -> list[str]:
        out = []
        for kind, items in self.by_kind.items():
            out.extend(items[:MAX_LISTED])
            if len(items) > MAX_LISTED:
                out.append(f"... and {len(items) - MAX_LISTED} more: {kind}")
        return out

    def raise_if_any(self, error: type[Exception] = DataError) -> None:
        if self.by_kind:
            raise error(self.lines())
