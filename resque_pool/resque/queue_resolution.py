"""Which queues a worker reads, in which order: Resque's queue-list semantics.

``"critical,*,!file_*"`` reads ``critical`` first, then every other existing queue in
alphabetical order except those matching ``file_*``. Patterns follow Ruby's
``File.fnmatch?`` without flags, which Python's :mod:`fnmatch` does not: no brace
expansion, ``*`` and ``?`` match ``/``, a leading ``.`` only matches a literal ``.``,
``\\`` escapes, ``[!...]`` and ``[^...]`` negate a bracket.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from resque_pool.errors import NoQueueError
from resque_pool.resque.queue_lists import split_queues

# Any of these in a pattern (or any negation) makes the list dynamic (worker.rb WILDCARDS).
WILDCARDS = ("*", "?", "{", "}", "[", "]")
NO_QUEUE_MESSAGE = "Please give each worker at least one queue."


def _parse_bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the bracket expression after ``pattern[start - 1] == "["``.

    Returns ``(regex, index after "]")``, or None when the bracket never closes (Ruby then
    fails the match at that point, so the pattern can never match).
    """
    i = start
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    while True:
        if i >= len(pattern):
            return None
        if pattern[i] == "]":
            break
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
        low = pattern[i]
        i += 1
        if i + 1 < len(pattern) and pattern[i] == "-" and pattern[i + 1] != "]":
            i += 1
            if pattern[i] == "\\" and i + 1 < len(pattern):
                i += 1
            high = pattern[i]
            i += 1
            if low <= high:
                items.append(f"{re.escape(low)}-{re.escape(high)}")
            else:  # Ruby still matches a reversed range's two end points
                items.extend((re.escape(low), re.escape(high)))
        else:
            items.append(re.escape(low))
    if not items:  # "[]" matches nothing, "[!]" any one character
        return (".", i + 1) if negate else ("(?!)", i + 1)
    return f"[{'^' if negate else ''}{''.join(items)}]", i + 1


@functools.lru_cache(maxsize=256)
def fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex equivalent to Ruby's ``File.fnmatch?(pattern, name)`` (no flags)."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            bracket = _parse_bracket(pattern, i)
            if bracket is None:
                return re.compile("(?!)")
            regex, i = bracket
            parts.append(regex)
        elif char == "\\" and i < len(pattern):
            parts.append(re.escape(pattern[i]))
            i += 1
        else:
            parts.append(re.escape(char))
    # Without FNM_DOTMATCH a leading "." is matched only by a literal (or escaped) ".".
    first = pattern[1:2] if pattern.startswith("\\") else pattern[:1]
    guard = "" if first == "." else r"(?!\.)"
    return re.compile(guard + "".join(parts) + r"\Z", re.DOTALL)


def fnmatch(pattern: str, name: str) -> bool:
    return fnmatch_regex(pattern).match(name) is not None


class QueueList:
    """A worker's parsed queue list: patterns in priority order plus negations.

    ``patterns`` are the raw non-negated entries (they make up the worker id);
    ``skip`` the negated ones without their ``!``.
    """

    def __init__(self, queues: str | Iterable[str]) -> None:
        entries = _entries(queues)
        self.skip = [entry[1:] for entry in entries if entry.startswith("!")]
        self.patterns = [entry for entry in entries if not entry.startswith("!")]
        if not self.patterns:
            raise NoQueueError(NO_QUEUE_MESSAGE)
        self.dynamic = bool(self.skip) or any(
            wildcard in pattern for pattern in self.patterns for wildcard in WILDCARDS
        )

    def __str__(self) -> str:
        return ",".join(self.patterns)

    def resolve(self, existing: Iterable[str] | None = None) -> list[str]:
        """The queues to read now. ``existing`` is the ``queues`` set; only dynamic lists
        need it, and there a literal name counts only when the queue exists."""
        if not self.dynamic:
            return list(self.patterns)
        existing = sorted(existing or ())
        resolved: dict[str, None] = {}  # an ordered set: flatten + uniq
        for pattern in self.patterns:
            for queue in existing:
                if fnmatch(pattern, queue) and not self._skipped(queue):
                    resolved.setdefault(queue, None)
        return list(resolved)

    def _skipped(self, queue: str) -> bool:
        return any(fnmatch(skip, queue) for skip in self.skip)


def _entries(queues: str | Iterable[str]) -> list[str]:
    if isinstance(queues, str):
        return split_queues(queues)
    return [entry for item in queues for entry in split_queues(str(item))]
