"""The dashboard's overview (with its live part, polled) and pausing every worker."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from resque_pool.dashboard import data
from resque_pool.dashboard import pools as live_pools
from resque_pool.dashboard.base import action, confirm, log_action, page, render, url

WORKING_SHOWN = 50  # busy workers listed on the overview (all are on the workers page)

def _overview_context() -> dict:
    all_workers = data.workers()
    queues = data.queues()
    info = data.info(queues, all_workers)
    return {
        "info": info,
        "queues": queues,
        "working": data.working(all_workers)[:WORKING_SHOWN],
        "working_total": info["working"],
        "worker_total": info["workers"],
        "pools": live_pools.pools(),
        "paused": data.workers_paused(),
        "generated_at": data.now(),
    }


@page
def overview(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    return render(
        model_admin,
        request,
        "overview.html",
        "Resque overview",
        "overview",
        poll_url=url("poll"),
        **_overview_context(),
    )


@page
def overview_poll(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The live part of the overview as an HTML fragment, fetched every few seconds."""
    response = render(
        model_admin, request, "_overview_live.html", "", "overview", **_overview_context()
    )
    response["Cache-Control"] = "no-store"
    return response


def _pause_action(model_admin: ModelAdmin, request: HttpRequest, *, paused: bool) -> HttpResponse:
    """Pause or resume every worker sharing this Redis (``pause-all-workers``, which Ruby's
    workers honour too): asks first, then sets or deletes the key and logs it."""
    name = "pause_workers" if paused else "resume_workers"
    if request.method == "GET":
        question = (
            "Pause every worker using this Redis, ours and Ruby's? Each one finishes its "
            "current job and then takes no new job until resumed; jobs wait in their queues."
            if paused
            else "Resume every worker paused by “pause all workers”? They take jobs again."
        )
        return confirm(
            model_admin,
            request,
            title="Pause all workers" if paused else "Resume all workers",
            tab="overview",
            question=question,
            action=url(name),
            fields={},
            cancel=url("changelist"),
            button="Yes, pause them" if paused else "Yes, resume them",
        )
    data.pause_workers(paused)
    message = (
        "Paused all workers (pause-all-workers set)"
        if paused
        else "Resumed all workers (pause-all-workers deleted)"
    )
    log_action(request, model_admin, message)
    messages.success(request, message + ".")
    return HttpResponseRedirect(url("changelist"))


@action(require_http_methods(["GET", "POST"]))
def pause_workers(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    return _pause_action(model_admin, request, paused=True)


@action(require_http_methods(["GET", "POST"]))
def resume_workers(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    return _pause_action(model_admin, request, paused=False)
