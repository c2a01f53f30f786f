"""The dashboard's workers, stats and keys pages (read-only; see ``views.py``)."""

from __future__ import annotations

from django.contrib.admin import ModelAdmin
from django.http import Http404, HttpRequest, HttpResponse

from resque_pool.dashboard import data, keys
from resque_pool.dashboard.base import page, render, url
from resque_pool.dashboard.paging import paginate
from resque_pool.dashboard.text import from_path, query_param
from resque_pool.resque import records

WORKER_PAGE = 100


# -- workers -------------------------------------------------------------------------------


@page
def worker_list(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    ids = data.worker_ids()
    host = query_param(request, "host")
    show_all = request.GET.get("all") == "1"
    by_host = data.hosts([data.worker_id_parts(i) for i in ids])
    grouped = len(by_host) > 1 and not host and not show_all
    if host:
        ids = [i for i in ids if records.parse_worker_id(i).host == host]
    if grouped:
        pager, shown = None, []
    else:
        query = {"host": host, "all": "1" if show_all else ""}
        listed, pager = paginate(request, ids, WORKER_PAGE, **{k: v for k, v in query.items() if v})
        shown = data.workers(list(listed.object_list))
    return render(
        model_admin,
        request,
        "workers.html",
        "Workers",
        "workers",
        workers=shown,
        hosts=by_host,
        grouped=grouped,
        host=host,
        page=pager,
        total=len(ids),
    )


@page
def worker_detail(model_admin: ModelAdmin, request: HttpRequest, worker_id: str) -> HttpResponse:
    registered = data.worker_registered(worker_id)
    if not registered and data.worker_registered(from_path(worker_id)):
        worker_id = from_path(worker_id)
        registered = True
    found = data.workers([worker_id])
    if not registered and not found[0]["job"] and not found[0]["heartbeat"]:
        raise Http404("no such worker")
    return render(
        model_admin,
        request,
        "worker.html",
        f"Worker {worker_id}",
        "workers",
        worker=found[0],
        worker_key=f"worker:{worker_id}",  # its job, for the whole-value link
        registered=registered,
    )


# -- one whole value ------------------------------------------------------------------------


@page
def whole_value(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """One stored value as plain text, whole: ``?key=queue:mail&index=3`` (an item of a
    list) or ``?key=worker:<id>`` (a string). The pages show at most ``PAYLOAD_LIMIT`` of a
    payload and link here for the rest, so a 10 MB job never makes a 10 MB page."""
    name = request.GET.get("key", "")
    index = request.GET.get("index")
    if not name:
        raise Http404("no key")
    try:
        value = keys.item(name, None if index is None else int(index))
    except ValueError:
        raise Http404("not an index") from None
    if value is None:
        raise Http404("no such value (it may have moved)")
    # The stored bytes as they are (the client reads them with surrogateescape).
    body = value.encode("utf-8", "surrogateescape")
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


# -- stats ---------------------------------------------------------------------------------


@page
def stats(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    info = data.info()
    return render(
        model_admin,
        request,
        "stats.html",
        "Stats",
        "stats",
        info=sorted(info.items()),
        redis_info=data.redis_info(),
    )


@page
def key_list(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    try:
        cursor = max(int(request.GET.get("cursor", 0)), 0)
    except ValueError:
        cursor = 0
    rows, next_cursor = keys.scan(cursor)
    return render(
        model_admin,
        request,
        "keys.html",
        "Keys",
        "stats",
        rows=rows,
        next_url=url("keys", cursor=next_cursor) if next_cursor else None,
        first_url=url("keys") if cursor else None,
    )


@page
def key_detail(model_admin: ModelAdmin, request: HttpRequest, key: str) -> HttpResponse:
    found = keys.contents(key)
    if found["type"] == "none":
        found = keys.contents(from_path(key))
    if found["type"] == "none":
        raise Http404("no such key")
    return render(model_admin, request, "key.html", f"Key {key}", "stats", found=found)
