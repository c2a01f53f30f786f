"""Django's ``Paginator`` over Redis lists: ``LLEN`` for the count, one ``LRANGE`` per page.

A Redis list can hold millions of entries, so nothing here reads more than the page shown.
``Paginator`` asks its object list for ``count()`` and then for one slice; ``RedisList``
answers the first with ``LLEN`` and the second with one ``LRANGE``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest

from resque_pool.dashboard.text import query_string
from resque_pool.resque.connection import get_redis


class RedisList:
    """A Redis list as a sequence of ``(index, stored text)`` for ``Paginator``.

    With ``newest_first`` the last entry comes first (the failed list shows its newest
    failures first, as resque-web does); indexes are always the list's own.
    """

    def __init__(self, name: str, newest_first: bool = False) -> None:
        self.name = name
        self.newest_first = newest_first
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = get_redis().llen(self.name)
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[tuple[int, str]]:
        if not isinstance(window, slice) or window.step not in (None, 1):
            raise TypeError("RedisList is read one page (a slice) at a time")
        total = self.count()
        start, stop, _step = window.indices(total)
        if stop <= start:
            return []
        if not self.newest_first:
            raws = get_redis().lrange(self.name, start, stop - 1)
            return [(start + offset, raw) for offset, raw in enumerate(raws)]
        low, high = total - stop, total - 1 - start
        raws = get_redis().lrange(self.name, low, high)
        return [(low + offset, raw) for offset, raw in reversed(list(enumerate(raws)))]


class Windowed:
    """A sequence for ``Paginator`` whose count is known and whose page is read by
    ``read(start, size)``: only the page shown is ever read."""

    def __init__(self, total: int, read: Callable[[int, int], list[Any]]) -> None:
        self.total, self.read = total, read

    def count(self) -> int:
        return self.total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, window: slice) -> list[Any]:
        start = window.start or 0
        return self.read(start, (window.stop or 0) - start)


class Counted(Windowed):
    """A ``Windowed`` with one window already read (a filter that has to scan the whole
    list reads its page during the same scan)."""

    def __init__(self, total: int, start: int, rows: list[Any], reread: Callable) -> None:
        super().__init__(total, reread)
        self.start, self.rows = start, rows

    def __getitem__(self, window: slice) -> list[Any]:
        if window.start == self.start:
            return self.rows[: window.stop - window.start]
        return super().__getitem__(window)


def page_number(request: HttpRequest) -> int:
    try:
        return max(int(request.GET.get("page", 1)), 1)
    except ValueError:
        return 1


def paginate(
    request: HttpRequest, object_list: Any, per_page: int, **query: str
) -> tuple[Page, dict]:
    """The requested page (the last one when asked past it) and what ``_pager.html`` shows:
    elided page links that keep ``query``, previous/next, and the range shown."""
    paginator = Paginator(object_list, per_page)
    page = paginator.get_page(page_number(request))
    path = request.path

    def link(number: int) -> str:
        return f"{path}?{query_string({**query, 'page': number})}"

    total = paginator.count
    context = {
        "number": page.number,
        "pages": paginator.num_pages,
        "start": page.start_index() - 1 if total else 0,
        "total": total,
        "first_shown": page.start_index(),
        "last_shown": page.end_index(),
        "links": [
            (number, None if number == paginator.ELLIPSIS else link(number))
            for number in paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)
        ],
        "previous": link(page.previous_page_number()) if page.has_previous() else None,
        "next": link(page.next_page_number()) if page.has_next() else None,
    }
    return page, context
