"""The dashboard's failed-list views: the paginated list and the retry/remove/clear actions.

Reading needs the dashboard's view permission, every action ``change_dashboard``, a POST
with the CSRF token, and (where data is lost) a confirmation first. Single-entry actions
carry the entry's digest so that a shifted index is refused (see ``failures``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import CHANGE, DELETION
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.views.decorators.http import require_http_methods, require_POST

from resque_pool.dashboard import data, failures
from resque_pool.dashboard.base import action, confirm, log_action, page, render, url
from resque_pool.dashboard.paging import Counted, RedisList, page_number, paginate
from resque_pool.dashboard.text import query_param
from resque_pool.resque import failures as failure
from resque_pool.resque.connection import key

FAILED_PAGE = 20


def selection_of(request: HttpRequest) -> failure.Selection:
    """The failed page's filter (``?class=…&queue=…``), with the original bytes."""
    return failure.Selection(
        class_name=query_param(request, "class") or None,
        queue=query_param(request, "queue") or None,
    )


def filter_query(selection: failure.Selection) -> dict[str, str]:
    query = {"class": selection.class_name, "queue": selection.queue}
    return {name: value for name, value in query.items() if value}


@page
def failed_list(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    selection = selection_of(request)
    query = filter_query(selection)
    if selection.everything:
        entries = RedisList(key(failure.FAILED), newest_first=True)
    else:
        # A filter scans the whole list: count and read the asked page in the same scan.
        def read(start: int, size: int) -> list:
            return failure.raw_page(start, size, selection=selection)[0]

        start = (page_number(request) - 1) * FAILED_PAGE
        rows, total = failure.raw_page(start, FAILED_PAGE, selection=selection)
        entries = Counted(total, start, rows, read)
    shown, page = paginate(request, entries, FAILED_PAGE, **query)
    rows = [failures.describe(index, raw) for index, raw in shown.object_list if raw != ""]
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
        class_name=selection.class_name or "",
        queue=selection.queue or "",
        filtered=not selection.everything,
        filter_query=query,
        total=page["total"],
        back=request.get_full_path(),
    )


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    failed_url = url("failed")
    return target if target.startswith(failed_url) else failed_url


def _index_and_digest(source: QueryDict) -> tuple[int, str]:
    try:
        return int(source.get("index", "")), str(source.get("digest", ""))
    except ValueError:
        raise Http404("bad failure index") from None


def _moved(request: HttpRequest, index: int, undone: str) -> None:
    """The entry's digest no longer matches what the page showed: say so, do nothing."""
    messages.error(
        request,
        f"Failure #{index} changed or moved since the page was shown (the list was "
        f"edited). Nothing was {undone}; look again.",
    )


@action(require_POST)
def failed_retry(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    index, digest = _index_and_digest(request.POST)
    try:
        done = failures.retry(index, digest)
    except failures.EntryMoved:
        _moved(request, index, "retried")
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


@action(require_http_methods(["GET", "POST"]))
def failed_remove(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    index, digest = _index_and_digest(source)
    if request.method == "GET":
        shown = failures.lookup(index, digest)
        if shown is None:
            _moved(request, index, "removed")
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
    try:
        failures.remove(index, digest)
    except failures.EntryMoved:
        _moved(request, index, "removed")
    else:
        log_action(request, model_admin, f"Removed failure #{index}", DELETION)
        messages.success(request, f"Removed failure #{index}.")
    return HttpResponseRedirect(_back(request))


def _bulk(
    model_admin: ModelAdmin,
    request: HttpRequest,
    *,
    name: str,
    button: str,
    question: Callable[[failure.Selection], str],
    run: Callable[[failure.Selection], tuple[str, int]],
) -> HttpResponse:
    """A bulk action on what the filter selects: GET asks first, saying how many entries
    that is; POST acts, tells and logs. The filter travels in the query string."""
    selection = selection_of(request)
    query = filter_query(selection)
    if request.method == "GET":
        return confirm(
            model_admin,
            request,
            title=button,
            tab="failed",
            question=question(selection),
            action=url(name, **query),
            fields={},
            cancel=url("failed", **query),
            button=button,
        )
    message, flag = run(selection)
    log_action(request, model_admin, message, flag)
    messages.success(request, message + ".")
    return HttpResponseRedirect(url("failed", **query))


@action(require_http_methods(["GET", "POST"]))
def failed_retry_all(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    def question(selection: failure.Selection) -> str:
        n = failure.count_selected(selection)
        return (
            f"Retry {n} failed job(s){selection.describe()}? Each one's class and args are "
            "pushed to its queue again; the entries stay in the list, marked as retried."
        )

    def run(selection: failure.Selection) -> tuple[str, int]:
        done = failure.requeue_selected(selection)
        return f"Retried {done} failure(s){selection.describe()}", CHANGE

    return _bulk(
        model_admin,
        request,
        name="failed_retry_all",
        button="Retry them",
        question=question,
        run=run,
    )


@action(require_http_methods(["GET", "POST"]))
def failed_clear(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    def question(selection: failure.Selection) -> str:
        n = failure.count_selected(selection)
        if selection.everything:
            return (
                f"Delete all {n} entries of the failed list? They are lost for good "
                "(stat:failed keeps its value)."
            )
        return (
            f"Remove the {n} failure(s){selection.describe()} from the failed list? "
            "They are lost for good."
        )

    def run(selection: failure.Selection) -> tuple[str, int]:
        if selection.everything:
            n = failure.count()
            failure.clear()  # Resque's DEL failed
            return f"Cleared the failed list ({n} entries)", DELETION
        removed = failure.remove_selected(selection)
        return f"Removed {removed} failure(s){selection.describe()}", DELETION

    return _bulk(
        model_admin,
        request,
        name="failed_clear",
        button="Yes, remove them",
        question=question,
        run=run,
    )


@action(require_http_methods(["GET", "POST"]))
def failed_clear_retried(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    def retried(selection: failure.Selection) -> failure.Selection:
        return failure.Selection(selection.class_name, selection.queue, retried=True)

    def question(selection: failure.Selection) -> str:
        n = failure.count_selected(retried(selection))
        return f"Remove the {n} failure(s){retried(selection).describe()}? They are lost for good."

    def run(selection: failure.Selection) -> tuple[str, int]:
        removed = failure.remove_selected(retried(selection))
        return f"Removed {removed} failure(s){retried(selection).describe()}", DELETION

    return _bulk(
        model_admin,
        request,
        name="failed_clear_retried",
        button="Yes, remove them",
        question=question,
        run=run,
    )
