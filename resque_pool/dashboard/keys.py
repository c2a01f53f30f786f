"""resque-web's ``/stats/keys``: the keys under the namespace with type and size, and one
key's contents, read with ``SCAN``-family commands so a large Redis is never blocked
(Resque itself uses ``KEYS *``)."""

from __future__ import annotations

import re
from typing import Any

from resque_pool.resque.connection import get_redis, namespace

PAGE = 100
PREVIEW = 100
_MAX_SCAN_CALLS = 50
_SIZE = {
    "string": "strlen",
    "list": "llen",
    "set": "scard",
    "zset": "zcard",
    "hash": "hlen",
    "stream": "xlen",
}


def _prefix() -> str:
    return namespace() + ":"


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def scan(cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
    """About one page of keys from ``cursor`` on, and the cursor to continue from (0 = done).

    ``SCAN`` walks the whole database, so a call may find nothing under our namespace; the
    walk stops after a page's worth of keys or a bounded number of calls.
    """
    client = get_redis()
    match = _glob_escape(_prefix()) + "*"
    names: list[str] = []
    for _call in range(_MAX_SCAN_CALLS):
        cursor, found = client.scan(cursor=cursor, match=match, count=1000)
        names.extend(found)
        if cursor == 0 or len(names) >= PAGE:
            break
    names = sorted(set(names))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    types = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for name, kind in zip(names, types, strict=True):
        getattr(pipe, _SIZE.get(kind, "exists"))(name)
    sizes = pipe.execute()
    rows = [
        {"key": name[len(_prefix()) :], "type": kind, "size": size}
        for name, kind, size in zip(names, types, sizes, strict=True)
    ]
    return rows, int(cursor)


def contents(key: str) -> dict[str, Any]:
    """Type, size and the first ``PREVIEW`` items of one key under the namespace."""
    client = get_redis()
    name = _prefix() + key
    kind = client.type(name)
    result: dict[str, Any] = {
        "key": key,
        "type": kind,
        "size": None,
        "items": [],
        "value": None,
        "ttl": client.ttl(name),
    }
    if kind == "none":
        return result
    if kind == "string":
        value = client.getrange(name, 0, 64 * 1024 - 1)
        result.update(size=client.strlen(name), value=value)
    elif kind == "list":
        result.update(
            size=client.llen(name),
            items=[(i, v) for i, v in enumerate(client.lrange(name, 0, PREVIEW - 1))],
        )
    elif kind == "set":
        _cursor, members = client.sscan(name, 0, count=PREVIEW)
        result.update(size=client.scard(name), items=[("", m) for m in sorted(members)])
    elif kind == "hash":
        _cursor, fields = client.hscan(name, 0, count=PREVIEW)
        result.update(size=client.hlen(name), items=sorted(fields.items()))
    elif kind == "zset":
        result.update(
            size=client.zcard(name), items=client.zrange(name, 0, PREVIEW - 1, withscores=True)
        )
    return result


def item(key: str, index: int | None) -> str | None:
    """One value under the namespace: the list item at ``index``, or the whole string when
    ``index`` is None; None when there is none."""
    client = get_redis()
    name = _prefix() + key
    if index is None:
        return client.get(name) if client.type(name) == "string" else None
    return client.lindex(name, index) if client.type(name) == "list" else None
