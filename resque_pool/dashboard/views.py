"""Views of the admin's live Resque dashboard (routed in ``urls.py``).

Every view gets the ``ModelAdmin`` first; ``admin.py`` wraps each one in
``admin_site.admin_view`` (login, staff, CSRF-protected POST). Reading needs the model
admin's view permission (``resque_pool.view_dashboard`` or ``change_dashboard``); every
action needs ``change_dashboard``, is a POST, and those that lose data ask first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_http_methods, require_safe

from resque_pool.dashboard import data
from resque_pool.dashboard import pools as live_pools
from resque_pool.dashboard.paging import RedisList, paginate
from resque_pool.dashboard.text import (
    from_path,
    printable,
    query_param,
    query_string,
    reverse_path,
)
from resque_pool.resque import failures as failure
from resque_pool.resque.connection import namespace

logger = logging.getLogger(__name__)

# A dashboard view: (model_admin, request, *url_arguments) -> response.
View = Callable[..., HttpResponse]

QUEUE_PAGE = 20
FAILED_PAGE = 20
POLL_SECONDS = 3
WORKING_SHOWN = 50  # busy workers listed on the overview (all are on the workers page)
TABS = [
    ("overview", "Overview"),
    ("queues", "Queues"),
    ("workers", "Workers"),
    ("failed", "Failed"),
    ("tasks", "Tasks"),  # Django task results (dashboard/task_views.py)
    ("delayed", "Delayed"),  # delayed jobs (dashboard/scheduler_views.py)
    ("schedules", "Schedules"),
    ("stats", "Stats"),
]


def url(view_name: str, *args: object, **query: object) -> str:
    name = f"admin:resque_pool_dashboard_{view_name}"
    target = reverse_path(name, args[0]) if len(args) == 1 else reverse(name, args=args)
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{target}?{query_string(query)}" if query else target


def require_view(model_admin: ModelAdmin, request: HttpRequest) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def require_change(model_admin: ModelAdmin, request: HttpRequest) -> None:
    if not model_admin.has_change_permission(request):
        raise PermissionDenied


def check_permissions(model_admin: ModelAdmin, request: HttpRequest, view: View) -> None:
    """The one place the dashboard checks permissions: ``admin.py`` calls it before any
    view runs (so before Redis is read). Pages need the view permission; views marked
    ``action`` change data and also need ``change_dashboard``."""
    require_view(model_admin, request)
    if getattr(view, "changes_data", False):
        require_change(model_admin, request)


def page(view: View) -> View:
    """A page: GET (and HEAD) only."""
    return method_decorator(require_safe)(view)


def action(allowed_methods: Callable[[View], View]) -> Callable[[View], View]:
    """An action that changes data, with the HTTP methods it allows (``require_POST``, or
    ``require_http_methods(["GET", "POST"])`` when a GET shows its confirmation)."""

    def mark(view: View) -> View:
        checked = method_decorator(allowed_methods)(view)
        checked.changes_data = True
        return checked

    return mark


class DashboardResponse(TemplateResponse):
    """A page of Redis data: bytes that are not UTF-8 (kept as they are everywhere else, so
    that actions write back what they read) are shown as ``\\xff`` here, at the one place
    where the page becomes text for the browser."""

    @property
    def rendered_content(self) -> str:
        return printable(super().rendered_content)


def base_context(model_admin: ModelAdmin, request: HttpRequest, title: str, tab: str) -> dict:
    """What every dashboard page shows around its content (also the Redis-down page)."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "tab": tab,
        "tabs": [
            (name, label, url("changelist" if name == "overview" else name)) for name, label in TABS
        ],
        "can_change": model_admin.has_change_permission(request),
        "resque_namespace": namespace(),
        "poll_seconds": POLL_SECONDS,
    }


def render(
    model_admin: ModelAdmin,
    request: HttpRequest,
    template: str,
    title: str,
    tab: str,
    **context: object,
) -> HttpResponse:
    base = {
        **base_context(model_admin, request, title, tab),
        "redis_location": data.redis_location(),
    }
    return DashboardResponse(
        request, f"admin/resque_pool/dashboard/{template}", {**base, **context}
    )


def log_action(
    request: HttpRequest, model_admin: ModelAdmin, message: str, flag: int = CHANGE
) -> None:
    """Dashboard actions go to the admin log (object: the dashboard) and to ``logging``."""
    message = printable(message)  # it may name a class or queue that is not UTF-8
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type_id=ContentType.objects.get_for_model(
            model_admin.model, for_concrete_model=False
        ).pk,
        object_id=None,
        object_repr=f"Resque {namespace()}",
        action_flag=flag,
        change_message=message,
    )
    logger.info("%s (admin user %s)", message, request.user.get_username())


def confirm(
    model_admin: ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    question: str,
    action: str,
    fields: dict,
    cancel: str,
    tab: str,
    button: str,
) -> HttpResponse:
    return render(
        model_admin,
        request,
        "confirm.html",
        title,
        tab,
        question=question,
        action=action,
        fields=fields,
        cancel_url=cancel,
        button=button,
    )


def redis_unavailable(
    model_admin: ModelAdmin, request: HttpRequest, error: Exception
) -> HttpResponse:
    """What every dashboard page shows when Redis cannot be reached (503, not a 500)."""
    logger.warning("dashboard: Redis unavailable: %s", error)
    context = {
        **base_context(model_admin, request, "Redis is unavailable", ""),
        "error": f"{type(error).__name__}: {error}",
        "redis_location": "?",
    }
    return DashboardResponse(
        request, "admin/resque_pool/dashboard/unavailable.html", context, status=503
    )


# -- overview ------------------------------------------------------------------------------


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


# -- queues --------------------------------------------------------------------------------


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
