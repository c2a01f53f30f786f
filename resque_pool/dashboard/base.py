"""What every page of the admin's live Resque dashboard is built from.

The permission checks, the ``page``/``action`` decorators, the response that shows bytes
that are not UTF-8, the frame around a page (tabs, namespace, Redis location), the
confirmation page and the admin log. The pages themselves are the ``*_views.py`` modules
beside this one, routed in ``urls.py``.

Every view gets the ``ModelAdmin`` first; ``admin.py`` wraps each one in
``admin_site.admin_view`` (login, staff, CSRF-protected POST). Reading needs the model
admin's view permission (``resque_pool.view_dashboard`` or ``change_dashboard``); every
action needs ``change_dashboard``, is a POST, and those that lose data ask first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_safe

from resque_pool.dashboard import data
from resque_pool.dashboard.text import printable, query_string, reverse_path
from resque_pool.resque.connection import namespace

# Named for the package, not this module: operators configure it (docs/admin.md), and it
# must not move when the pages are rearranged.
logger = logging.getLogger("resque_pool.dashboard")

# A dashboard view: (model_admin, request, *url_arguments) -> response.
View = Callable[..., HttpResponse]

POLL_SECONDS = 3
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
