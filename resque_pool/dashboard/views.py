"""Views of the admin's live Resque dashboard (bound to ``DashboardAdmin`` in ``admin.py``).

Every view gets the ``ModelAdmin`` first; ``admin.py`` wraps each one in
``admin_site.admin_view`` (login, staff, CSRF-protected POST). Reading needs the model
admin's view permission (``resque_pool.view_dashboard`` or ``change_dashboard``); every
action needs ``change_dashboard``, is a POST, and those that lose data ask first.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import failure
from ..connection import namespace
from . import data, failures

logger = logging.getLogger("resque_pool.admin")

QUEUE_PAGE = 20
FAILED_PAGE = 20
WORKER_PAGE = 100
POLL_SECONDS = 3
WORKING_SHOWN = 50  # busy workers listed on the overview (all are on the workers page)
TABS = [("overview", "Overview"), ("queues", "Queues"), ("workers", "Workers"),
        ("failed", "Failed"), ("stats", "Stats")]


def url(view_name: str, *args, **query) -> str:
    target = reverse(f"admin:resque_pool_dashboard_{view_name}", args=args)
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{target}?{urlencode(query)}" if query else target


def _require_view(model_admin, request) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def _require_change(model_admin, request) -> None:
    if not model_admin.has_change_permission(request):
        raise PermissionDenied


def render(model_admin, request, template: str, title: str, tab: str, **context):
    _require_view(model_admin, request)
    ns = namespace()
    base = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "tab": tab,
        "tabs": [(name, label, url("changelist" if name == "overview" else name))
                 for name, label in TABS],
        "can_change": model_admin.has_change_permission(request),
        "resque_namespace": ns,
        "redis_location": data.redis_location(),
        "poll_seconds": POLL_SECONDS,
    }
    return TemplateResponse(request, f"admin/resque_pool/dashboard/{template}",
                            {**base, **context})


def _page_number(request) -> int:
    try:
        return max(int(request.GET.get("page", 1)), 1)
    except ValueError:
        return 1


def pager(request, total: int, size: int, **query) -> dict:
    number = _page_number(request)
    pages = max((total + size - 1) // size, 1)
    number = min(number, pages)
    start = (number - 1) * size
    near = sorted({1, pages, *range(max(number - 2, 1), min(number + 2, pages) + 1)})
    path = request.path

    def link(n: int) -> str:
        return f"{path}?{urlencode({**query, 'page': n})}"

    return {
        "number": number, "pages": pages, "start": start, "total": total,
        "first_shown": start + 1 if total else 0, "last_shown": min(start + size, total),
        "links": [(n, link(n)) for n in near],
        "previous": link(number - 1) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
    }


def _log(request, model_admin, message: str, flag: int = CHANGE) -> None:
    """Dashboard actions go to the admin log (object: the dashboard) and to ``logging``."""
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type_id=ContentType.objects.get_for_model(
            model_admin.model, for_concrete_model=False).pk,
        object_id=None,
        object_repr=f"Resque {namespace()}",
        action_flag=flag,
        change_message=message,
    )
    logger.info("%s (admin user %s)", message, request.user.get_username())


def _confirm(model_admin, request, *, title: str, question: str, action: str, fields: dict,
             cancel: str, tab: str, button: str):
    return render(model_admin, request, "confirm.html", title, tab, question=question,
                  action=action, fields=fields, cancel_url=cancel, button=button)


def redis_unavailable(model_admin, request, error: Exception):
    """What every dashboard page shows when Redis cannot be reached (503, not a 500)."""
    logger.warning("dashboard: Redis unavailable: %s", error)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Redis is unavailable",
        "tab": "",
        "tabs": [(name, label, url("changelist" if name == "overview" else name))
                 for name, label in TABS],
        "error": f"{type(error).__name__}: {error}",
        "resque_namespace": namespace(),
        "redis_location": "?",
    }
    return TemplateResponse(request, "admin/resque_pool/dashboard/unavailable.html", context,
                            status=503)


# -- overview ------------------------------------------------------------------------------


def _overview_context() -> dict:
    all_workers = data.workers()
    return {
        "info": data.info(),
        "queues": data.queues(),
        "working": data.working(all_workers)[:WORKING_SHOWN],
        "working_total": sum(1 for w in all_workers if w["job"]),
        "worker_total": len(all_workers),
        "pools": data.pools(),
        "generated_at": data.now(),
    }


def overview(model_admin, request):
    return render(model_admin, request, "overview.html", "Resque overview", "overview",
                  poll_url=url("poll"), **_overview_context())


def overview_poll(model_admin, request):
    """The live part of the overview as an HTML fragment, fetched every few seconds."""
    response = render(model_admin, request, "_overview_live.html", "", "overview",
                      **_overview_context())
    response["Cache-Control"] = "no-store"
    return response


# -- queues --------------------------------------------------------------------------------


def queue_list(model_admin, request):
    return render(model_admin, request, "queues.html", "Queues", "queues",
                  queues=data.queues(), failed_count=failure.count(),
                  failed_queues=data.failed_queues())


def queue_detail(model_admin, request, name: str):
    _require_view(model_admin, request)
    total = data.queue_jobs(name, 0, 0)[1]
    page = pager(request, total, QUEUE_PAGE)
    jobs, total = data.queue_jobs(name, page["start"], QUEUE_PAGE)
    return render(model_admin, request, "queue.html", f"Pending jobs on {name}", "queues",
                  queue=name, jobs=jobs, page=page, known=data.queue_exists(name),
                  remove_url=url("remove_queue", name=name))


def remove_queue(model_admin, request):
    _require_change(model_admin, request)
    name = request.POST.get("name") if request.method == "POST" else request.GET.get("name")
    if not name:
        raise Http404("no queue named")
    if request.method == "GET":
        size = data.queue_jobs(name, 0, 0)[1]
        return _confirm(model_admin, request, title="Remove queue", tab="queues",
                        question=f"Remove queue “{name}” and its {size} pending job(s)? "
                                 "The jobs are lost.",
                        action=url("remove_queue"), fields={"name": name},
                        cancel=url("queue", name), button="Yes, remove the queue")
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    dropped = data.remove_queue(name)
    _log(request, model_admin, f"Removed queue {name} with {dropped} pending job(s)", DELETION)
    messages.success(request, f"Removed queue “{name}” ({dropped} pending job(s) dropped).")
    return HttpResponseRedirect(url("queues"))


# -- workers -------------------------------------------------------------------------------


def worker_list(model_admin, request):
    _require_view(model_admin, request)
    ids = data.worker_ids()
    host = request.GET.get("host") or ""
    show_all = request.GET.get("all") == "1"
    by_host = data.hosts([data.parse_worker_id(i) for i in ids])
    grouped = len(by_host) > 1 and not host and not show_all
    if host:
        ids = [i for i in ids if data.parse_worker_id(i)["host"] == host]
    if grouped:
        page, shown = None, []
    else:
        page = pager(request, len(ids), WORKER_PAGE, **({"host": host} if host else {}),
                     **({"all": "1"} if show_all else {}))
        shown = data.workers(ids[page["start"]: page["start"] + WORKER_PAGE])
    return render(model_admin, request, "workers.html", "Workers", "workers",
                  workers=shown, hosts=by_host, grouped=grouped, host=host, page=page,
                  total=len(ids))


def worker_detail(model_admin, request, worker_id: str):
    _require_view(model_admin, request)
    found = data.workers([worker_id])
    registered = worker_id in set(data.worker_ids())
    if not registered and not found[0]["job"] and not found[0]["heartbeat"]:
        raise Http404("no such worker")
    return render(model_admin, request, "worker.html", f"Worker {worker_id}", "workers",
                  worker=found[0], registered=registered)


# -- failed --------------------------------------------------------------------------------


def failed_list(model_admin, request):
    _require_view(model_admin, request)
    class_name = request.GET.get("class") or ""
    query = {"class": class_name} if class_name else {}
    start = (_page_number(request) - 1) * FAILED_PAGE
    rows, total = failures.page(start, FAILED_PAGE, class_name or None)
    page = pager(request, total, FAILED_PAGE, **query)
    if page["start"] != start:  # asked past the last page: show the last one
        rows, total = failures.page(page["start"], FAILED_PAGE, class_name or None)
        page = pager(request, total, FAILED_PAGE, **query)
    return render(model_admin, request, "failed.html", "Failed jobs", "failed", rows=rows,
                  page=page, class_name=class_name, total=total,
                  back=request.get_full_path())


def _back(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    failed_url = url("failed")
    return target if target.startswith(failed_url) else failed_url


def _index_and_digest(source) -> tuple[int, str]:
    try:
        return int(source.get("index", "")), str(source.get("digest", ""))
    except ValueError:
        raise Http404("bad failure index") from None


def failed_retry(model_admin, request):
    _require_change(model_admin, request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    index, digest = _index_and_digest(request.POST)
    try:
        done = failures.retry(index, digest)
    except failures.EntryMoved:
        messages.error(request, f"Failure #{index} changed or moved since the page was shown "
                                "(the list was edited). Nothing was retried; look again.")
    except ValueError as error:
        messages.error(request, str(error))
    else:
        _log(request, model_admin, f"Retried failure #{index} ({done['job_class']} on "
                                   f"{done['queue']})")
        messages.success(request, f"Retried failure #{index}: {done['job_class']} pushed to "
                                  f"“{done['queue']}”.")
    return HttpResponseRedirect(_back(request))


def failed_remove(model_admin, request):
    _require_change(model_admin, request)
    source = request.POST if request.method == "POST" else request.GET
    index, digest = _index_and_digest(source)
    if request.method == "GET":
        shown = failures.lookup(index, digest)
        if shown is None:
            messages.error(request, f"Failure #{index} changed or moved since the page was "
                                    "shown. Nothing was removed; look again.")
            return HttpResponseRedirect(_back(request))
        what = f"{shown['class'] or 'a job'} on {shown['queue'] or '?'}: {shown['exception']}"
        return _confirm(model_admin, request, title="Remove failure", tab="failed",
                        question=f"Remove failure #{index} ({what}) from the failed list? "
                                 "It is lost for good.",
                        action=url("failed_remove"),
                        fields={"index": index, "digest": digest, "next": _back(request)},
                        cancel=_back(request), button="Yes, remove it")
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        failures.remove(index, digest)
    except failures.EntryMoved:
        messages.error(request, f"Failure #{index} changed or moved since the page was shown. "
                                "Nothing was removed; look again.")
    else:
        _log(request, model_admin, f"Removed failure #{index}", DELETION)
        messages.success(request, f"Removed failure #{index}.")
    return HttpResponseRedirect(_back(request))


def failed_retry_all(model_admin, request):
    _require_change(model_admin, request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    done = failure.requeue_all()
    _log(request, model_admin, f"Retried all failures ({done} job(s) pushed)")
    messages.success(request, f"Retried {done} failed job(s).")
    return HttpResponseRedirect(url("failed"))


def _bulk_confirmable(model_admin, request, *, name: str, question: str, button: str, run):
    _require_change(model_admin, request)
    if request.method == "GET":
        return _confirm(model_admin, request, title=button, tab="failed", question=question,
                        action=url(name), fields={}, cancel=url("failed"), button=button)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    run()
    return HttpResponseRedirect(url("failed"))


def failed_clear(model_admin, request):
    def run():
        count = failure.count()
        failure.clear()
        _log(request, model_admin, f"Cleared the failed list ({count} entries)", DELETION)
        messages.success(request, f"Cleared {count} failure(s).")

    return _bulk_confirmable(
        model_admin, request, name="failed_clear", button="Clear failed jobs",
        question=f"Delete all {failure.count()} entries of the failed list? They are lost "
                 "for good (stat:failed keeps its value).", run=run)


def failed_clear_retried(model_admin, request):
    def run():
        count = failure.clear_retried()
        _log(request, model_admin, f"Cleared {count} retried failure(s)", DELETION)
        messages.success(request, f"Cleared {count} retried failure(s).")

    return _bulk_confirmable(
        model_admin, request, name="failed_clear_retried", button="Clear retried jobs",
        question="Delete every failure that has already been retried?", run=run)


# -- stats ---------------------------------------------------------------------------------


def stats(model_admin, request):
    _require_view(model_admin, request)
    info = data.info()
    return render(model_admin, request, "stats.html", "Stats", "stats",
                  info=sorted(info.items()), redis_info=data.redis_info())
