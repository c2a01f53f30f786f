"""The dashboard's failed-list views: the paginated list and the retry/remove/clear actions.

Reading needs the dashboard's view permission, every action ``change_dashboard``, a POST
with the CSRF token, and (where data is lost) a confirmation first. Single-entry actions
carry the entry's digest so that a shifted index is refused (see ``failures``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.models import DELETION
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect

from resque_pool.dashboard import data, failures
from resque_pool.dashboard.text import query_param
from resque_pool.dashboard.views import (
    FAILED_PAGE,
    confirm,
    log_action,
    page_number,
    pager,
    render,
    require_change,
    require_view,
    url,
)
from resque_pool.resque import failures as failure


def failed_list(model_admin, request):
    require_view(model_admin, request)
    class_name = query_param(request, "class")
    query = {"class": class_name} if class_name else {}
    start = (page_number(request) - 1) * FAILED_PAGE
    rows, total = failures.page(start, FAILED_PAGE, class_name or None)
    page = pager(request, total, FAILED_PAGE, **query)
    if page["start"] != start:  # asked past the last page: show the last one
        rows, total = failures.page(page["start"], FAILED_PAGE, class_name or None)
        page = pager(request, total, FAILED_PAGE, **query)
    alive = data.registered([row["worker"] for row in rows])
    for row in rows:
        row["worker_registered"] = row["worker"] in alive
    return render(
        model_admin,
        request,
        "failed.html",
        "Failed jobs",
        "failed",
        rows=rows,
        page=page,
        class_name=class_name,
        total=total,
        back=request.get_full_path(),
    )


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
    require_change(model_admin, request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    index, digest = _index_and_digest(request.POST)
    try:
        done = failures.retry(index, digest)
    except failures.EntryMoved:
        messages.error(
            request,
            f"Failure #{index} changed or moved since the page was shown "
            "(the list was edited). Nothing was retried; look again.",
        )
    except ValueError as error:
        messages.error(request, str(error))
    else:
        log_action(
            request,
            model_admin,
            f"Retried failure #{index} ({done['job_class']} on {done['queue']})",
        )
        messages.success(
            request, f"Retried failure #{index}: {done['job_class']} pushed to “{done['queue']}”."
        )
    return HttpResponseRedirect(_back(request))


def failed_remove(model_admin, request):
    require_change(model_admin, request)
    source = request.POST if request.method == "POST" else request.GET
    index, digest = _index_and_digest(source)
    if request.method == "GET":
        shown = failures.lookup(index, digest)
        if shown is None:
            messages.error(
                request,
                f"Failure #{index} changed or moved since the page was "
                "shown. Nothing was removed; look again.",
            )
            return HttpResponseRedirect(_back(request))
        what = f"{shown['class'] or 'a job'} on {shown['queue'] or '?'}: {shown['exception']}"
        return confirm(
            model_admin,
            request,
            title="Remove failure",
            tab="failed",
            question=f"Remove failure #{index} ({what}) from the failed list? It is lost for good.",
            action=url("failed_remove"),
            fields={"index": index, "digest": digest, "next": _back(request)},
            cancel=_back(request),
            button="Yes, remove it",
        )
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        failures.remove(index, digest)
    except failures.EntryMoved:
        messages.error(
            request,
            f"Failure #{index} changed or moved since the page was shown. "
            "Nothing was removed; look again.",
        )
    else:
        log_action(request, model_admin, f"Removed failure #{index}", DELETION)
        messages.success(request, f"Removed failure #{index}.")
    return HttpResponseRedirect(_back(request))


def failed_retry_all(model_admin, request):
    require_change(model_admin, request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    done = failure.requeue_all()
    log_action(request, model_admin, f"Retried all failures ({done} job(s) pushed)")
    messages.success(request, f"Retried {done} failed job(s).")
    return HttpResponseRedirect(url("failed"))


def _bulk_confirmable(model_admin, request, *, name: str, question: str, button: str, run):
    require_change(model_admin, request)
    if request.method == "GET":
        return confirm(
            model_admin,
            request,
            title=button,
            tab="failed",
            question=question,
            action=url(name),
            fields={},
            cancel=url("failed"),
            button=button,
        )
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    run()
    return HttpResponseRedirect(url("failed"))


def failed_clear(model_admin, request):
    def run():
        count = failure.count()
        failure.clear()
        log_action(request, model_admin, f"Cleared the failed list ({count} entries)", DELETION)
        messages.success(request, f"Cleared {count} failure(s).")

    return _bulk_confirmable(
        model_admin,
        request,
        name="failed_clear",
        button="Clear failed jobs",
        question=f"Delete all {failure.count()} entries of the failed list? They are lost "
        "for good (stat:failed keeps its value).",
        run=run,
    )


def failed_clear_retried(model_admin, request):
    def run():
        count = failure.clear_retried()
        log_action(request, model_admin, f"Cleared {count} retried failure(s)", DELETION)
        messages.success(request, f"Cleared {count} retried failure(s).")

    return _bulk_confirmable(
        model_admin,
        request,
        name="failed_clear_retried",
        button="Clear retried jobs",
        question="Delete every failure that has already been retried?",
        run=run,
    )
