"""``ConfigError``, the one exception a pool's configuration raises, and the helpers that
keep its messages short: a value quoted in one can be megabytes long (or recursive)."""

from __future__ import annotations

import reprlib
from typing import Any


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line for a person."""


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlevel = 2


def quote(value: Any) -> str:
    """A bounded repr for error messages: a value can be megabytes long (or recursive)."""
    return _short.repr(value)


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(error: BaseException) -> str:
    """``"Type: first line of the message"`` for an error from code we do not control (a
    loader, a database driver), whose message may run over many lines."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
