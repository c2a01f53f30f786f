"""Showing and linking Redis values that are not valid text.

Redis holds bytes, and other clients may write any: the connection decodes them as UTF-8
with ``surrogateescape``, so a byte that is not UTF-8 arrives as a lone surrogate
(``"Nope\\xff"`` becomes ``"Nope\\udcff"``), and JSON's ``"\\ud800"`` escapes decode to lone
surrogates too. Python cannot encode those as UTF-8, which is what a page, a URL, a log
entry or a database row needs. The dashboard keeps such values as they are (so actions
write back the very bytes they read) and converts them only at those boundaries: shown as
``\\xff``, linked as ``%FF``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

from django.http import HttpRequest
from django.urls import reverse

# A lone surrogate can only stand for a byte that was not UTF-8 (U+DC80..U+DCFF under
# surrogateescape) or come from a JSON "\uXXXX" escape; either way it cannot be encoded.
_SURROGATE = re.compile("[\ud800-\udfff]")
# What Django's reverse() leaves unquoted in a path, so links keep their usual look.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every byte that was not UTF-8 shown as ``\\xff`` (other lone
    surrogates as ``\\ud800``): safe to encode, to render, to store."""
    return _SURROGATE.sub(_escape, text) if _SURROGATE.search(text) else text


def quote_path(text: str) -> str:
    """A path segment that carries ``text``'s original bytes (``%FF`` for ``\\xff``)."""
    try:
        return quote(text, safe=_PATH_SAFE, errors="surrogateescape")
    except UnicodeEncodeError:  # a JSON "\ud800" escape: no bytes to link, never a 500
        return quote(text, safe=_PATH_SAFE, errors="surrogatepass")


def query_string(query: dict) -> str:
    """``urlencode`` that keeps bytes that are not UTF-8 (``%FF``) instead of failing."""
    try:
        return urlencode(query, errors="surrogateescape")
    except UnicodeEncodeError:
        return urlencode(query, errors="surrogatepass")


def reverse_path(view_name: str, value: str) -> str:
    """``reverse(view_name, args=[value])`` for a value from Redis: bytes that are not
    UTF-8 are linked as ``%FF`` (``reverse`` itself would fail on them), which
    ``from_path`` turns back into the name Redis holds."""
    try:
        return reverse(view_name, args=[value])
    except UnicodeEncodeError:
        base = reverse(view_name, args=["-"])
        return base[: -len("-/")] + quote_path(str(value)) + "/"


def from_path(text: str) -> str:
    """The value a ``quote_path`` link meant: Django turns bytes of a request path that are
    not UTF-8 back into ``%FF`` before a view sees them (``repercent_broken_unicode``)."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def query_param(request: HttpRequest, name: str, default: str = "") -> str:
    """A query parameter with its original bytes (``request.GET`` replaces bytes that are
    not UTF-8 with U+FFFD, which would name another queue or class)."""
    raw = request.META.get("QUERY_STRING", "")
    for field, value in parse_qsl(raw, keep_blank_values=True, errors="surrogateescape"):
        if field == name:
            return value
    return default
