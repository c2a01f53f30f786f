"""The admin's task results pages, beside the Resque pages of the dashboard.

They read the result records in Redis (``results.py``) without the Tasks framework, so
they work in any process and show results of tasks this process does not import.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin
from django.http import Http404, HttpRequest, HttpResponse

from resque_pool.dashboard import base, data
from resque_pool.dashboard.paging import Windowed, paginate
from resque_pool.tasks import results

PAGE = 50


def row(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its times parsed and its last error's class, for the templates."""
    errors = [e for e in record.get("errors") or [] if isinstance(e, dict)]
    return {
        **record,
        "record_id": record.get("id"),
        "enqueued": results.decode_time(record.get("enqueued_at")),
        "started": results.decode_time(record.get("started_at")),
        "finished": results.decode_time(record.get("finished_at")),
        "last_attempted": results.decode_time(record.get("last_attempted_at")),
        "run_after_at": results.decode_time(record.get("run_after")),
        "attempts": len(record.get("worker_ids") or []),
        "errors": errors,
        "last_error": errors[-1].get("exception_class_path") if errors else "",
        "has_return_value": "return_value" in record,
        "return_text": data.pretty(record.get("return_value")),
        "args_text": data.pretty(record.get("args")),
        "kwargs_text": data.pretty(record.get("kwargs")),
    }


@base.page
def task_results(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    index = Windowed(results.count(), results.page)
    shown, page = paginate(request, index, PAGE)
    rows = [row(record) for record in shown.object_list]
    total = index.total
    return base.render(
        model_admin,
        request,
        "task_results.html",
        "Task results",
        "tasks",
        rows=rows,
        page=page,
        total=total,
        ttl=results.ttl(),
    )


@base.page
def task_result(model_admin: ModelAdmin, request: HttpRequest, result_id: str) -> HttpResponse:
    record = results.load(result_id)
    if record is None:
        raise Http404("no such task result (it may have expired)")
    return base.render(
        model_admin,
        request,
        "task_result.html",
        f"Task result {result_id}",
        "tasks",
        result=row(record),
        expires_in=results.expires_in(result_id),
    )
