"""The dashboard's queue pages: every queue, one queue's pending jobs, removing a queue."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import DELETION
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from resque_pool.dashboard import data
from resque_pool.dashboard.base import action, confirm, log_action, page, render, url
from resque_pool.dashboard.paging import RedisList, paginate
from resque_pool.dashboard.text import from_path, query_param
from resque_pool.resque import failures as failure

QUEUE_PAGE = 20

@page
def queue_list(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    return render(
        model_admin,
        request,
        "queues.html",
        "Queues",
        "queues",
        queues=data.queues(),
        failed_count=failure.count(),
        failed_queues=data.failed_queues(),
    )


@page
def queue_detail(model_admin: ModelAdmin, request: HttpRequest, name: str) -> HttpResponse:
    known = data.queue_exists(name)
    if not known:
        name = from_path(name)
        known = data.queue_exists(name)
    shown, page = paginate(request, RedisList(data.queue_key(name)), QUEUE_PAGE)
    jobs = data.describe_jobs(shown.object_list)
    return render(
        model_admin,
        request,
        "queue.html",
        f"Pending jobs on {name}",
        "queues",
        queue=name,
        queue_key=f"queue:{name}",  # under the namespace, for the whole-value links
        jobs=jobs,
        page=page,
        known=known,
        remove_url=url("remove_queue", name=name),
    )


@action(require_http_methods(["GET", "POST"]))
def remove_queue(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    # The name travels in the query string, also for the POST, so that a name that is not
    # UTF-8 reaches Redis byte for byte (a form field could not carry it).
    name = query_param(request, "name") or request.POST.get("name")
    if not name:
        raise Http404("no queue named")
    if request.method == "GET":
        size = data.queue_length(name)
        return confirm(
            model_admin,
            request,
            title="Remove queue",
            tab="queues",
            question=f"Remove queue “{name}” and its {size} pending job(s)? The jobs are lost.",
            action=url("remove_queue", name=name),
            fields={},
            cancel=url("queue", name),
            button="Yes, remove the queue",
        )
    dropped = data.remove_queue(name)
    log_action(
        request, model_admin, f"Removed queue {name} with {dropped} pending job(s)", DELETION
    )
    messages.success(request, f"Removed queue “{name}” ({dropped} pending job(s) dropped).")
    return HttpResponseRedirect(url("queues"))
