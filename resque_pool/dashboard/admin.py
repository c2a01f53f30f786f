"""The admin: worker counts per queue list, and a live Resque dashboard (its URLs are
``urls.py``; the schedules' admin is ``schedule_admin.py``). The app's ``ready()`` imports
this module, which registers the model admins.

Permissions:

- Worker counts use the model's own permissions (``view``/``add``/``change``/``delete``
  ``workercount``); the pause and restore actions need ``change_workercount``.
- The dashboard (an unmanaged model with no table) has ``view_dashboard`` to see queues,
  workers, failures and stats, and ``change_dashboard`` to retry, remove and clear.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import redis as redis_lib
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from resque_pool.conf import settings
from resque_pool.dashboard import base, urls
from resque_pool.dashboard import pools as live_pools
from resque_pool.dashboard import schedule_admin as _schedule_admin  # noqa: F401 (registers Schedule)
from resque_pool.models import Dashboard, WorkerCount


class RunningColumn:
    """The "running now" column: one Redis read per changelist, shared by every row. An
    autoscaled row adds the targets of the live pools it applies to, the last decision
    in the tooltip (its whole text is on the row's own page: in a column it pushed the
    table past a 1280 px window)."""

    short_description = "running now"

    def __init__(self, pools: list[dict[str, Any]] | None) -> None:
        self.pools = pools
        self.__name__ = "running_now"

    def __call__(self, obj: WorkerCount) -> str | int:
        if self.pools is None:
            return format_html('<span title="{}">?</span>', "Redis could not be read")
        found = live_pools.lists_of_row(self.pools, obj.queues, obj.environment, obj.pool)
        running = sum(item["running"] for _state, item in found)
        scaled = [(state, item["autoscale"]) for state, item in found if item["autoscale"]]
        if obj.max_count is None or not scaled:
            return running
        target = sum(scale["target"] for _state, scale in scaled)
        tooltip = "; ".join(f"{_pool_name(st)}: {decision_text(scale)}" for st, scale in scaled)
        return format_html(
            '{} <span class="autoscale" title="{}">target {}</span>', running, tooltip, target
        )


def _pool_name(state: dict[str, Any]) -> str:
    return str(state.get("pool") or state.get("id"))


def decision_text(scale: dict[str, Any]) -> str:
    """An autoscaled list's target in one pool and its last decision, in words."""
    decision = scale["decision"]
    if not decision:
        return f"target {scale['target']}, at its floor since the pool started"
    clock = decision["at"][11:19]  # HH:MM:SS of the ISO time, UTC
    return (
        f"target {scale['target']}, {decision['from']} → {decision['to']} at {clock} UTC: "
        f"{decision['reason']}"
    )


def wrap_after(separator: str, text: str) -> str:
    """``text`` escaped, free to wrap after each ``separator``: queue lists and host names
    have no spaces, and unbroken they would widen the changelist past the window."""
    return format_html_join(
        mark_safe(separator + "<wbr>"), "{}", ((p,) for p in text.split(separator))
    )


@admin.register(WorkerCount)
class WorkerCountAdmin(admin.ModelAdmin):
    list_display = (
        "queues_label",
        "count",
        "environment_label",
        "pool_label",
        "limits_label",
    )
    list_display_links = ("queues_label",)
    list_editable = ("count",)
    list_filter = ("environment", "pool")
    search_fields = ("queues",)
    fields = (
        "queues",
        "count",
        "max_count",
        "autoscaling_now",
        "environment",
        "pool",
        "job_timeout",
        "max_jobs",
        "max_memory_mb",
    )
    readonly_fields = ("autoscaling_now",)
    actions = ("pause", "restore")

    @admin.display(description="queues", ordering="queues")
    def queues_label(self, obj: WorkerCount) -> str:
        """The list, free to wrap after each comma (a long list must not widen the table), and
        a paused list's tag with the count "restore" brings back (a column of its own was
        mostly empty and pushed the table past a 1280 px window)."""
        queues = wrap_after(",", obj.queues)
        if obj.max_count is not None:
            queues = format_html(
                '{} <span class="autoscaled">autoscaled {}..{}</span>',
                queues,
                obj.count,
                obj.max_count,
            )
        if obj.paused_count is None:
            return queues
        return format_html(
            '{} <span class="paused">paused (was {})</span>', queues, obj.paused_count
        )

    @admin.display(description="autoscaling now")
    def autoscaling_now(self, obj: WorkerCount) -> str:
        """Per live pool the row applies to: the list's target and the last decision with
        its reason."""
        if obj.pk is None or obj.max_count is None:
            return "Fixed: give a maximum to autoscale between the count and it."
        pools = getattr(obj, "_resque_pools", None)
        if pools is None:
            return "? (Redis could not be read)"
        found = live_pools.lists_of_row(pools, obj.queues, obj.environment, obj.pool)
        lines = [(_pool_name(s), decision_text(i["autoscale"])) for s, i in found if i["autoscale"]]
        if not lines:
            return "No live pool autoscales this list."
        return format_html_join(mark_safe("<br>"), "{}: {}", lines)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:  # for autoscaling_now, which Django calls with the row only
            obj._resque_pools = self.pools_now(request)
        return obj

    @admin.display(description="environment", ordering="environment")
    def environment_label(self, obj: WorkerCount) -> str:
        return obj.environment or "(every environment)"

    @admin.display(description="pool", ordering="pool")
    def pool_label(self, obj: WorkerCount) -> str:
        return wrap_after(".", obj.pool) if obj.pool else "(every pool)"

    @admin.display(description="limits")
    def limits_label(self, obj: WorkerCount) -> str:
        """The list's own limits; workers started from now on use them."""
        parts = [
            obj.job_timeout and f"jobs {obj.job_timeout}s",
            obj.max_jobs and f"max {obj.max_jobs} jobs",
            obj.max_memory_mb and f"max {obj.max_memory_mb} MB",
        ]
        # In a narrow column, one limit per line rather than one word per line.
        return format_html_join(
            ", ", '<span class="limit">{}</span>', ((part,) for part in parts if part)
        )

    @staticmethod
    def pools_now(request: HttpRequest) -> list[dict[str, Any]] | None:
        """The live pools, read from Redis once per request (Django asks for list_display
        more than once); None when Redis cannot be read."""
        if not hasattr(request, "_resque_pools"):
            try:
                request._resque_pools = live_pools.pools()
            except Exception:  # noqa: BLE001 (Redis down must not break editing counts)
                request._resque_pools = None
        return request._resque_pools

    def get_list_display(self, request: HttpRequest) -> list:
        display = list(super().get_list_display(request))
        display.insert(3, RunningColumn(self.pools_now(request)))
        return display

    def save_model(
        self, request: HttpRequest, obj: WorkerCount, form: ModelForm, change: bool
    ) -> None:
        # An operator who sets a count by hand ends the pause.
        if obj.paused_count is not None and obj.count:
            obj.paused_count = None
        super().save_model(request, obj, form, change)

    @admin.action(
        description="Pause: set the count to 0 (restore brings it back)", permissions=["change"]
    )
    def pause(self, request: HttpRequest, queryset: QuerySet[WorkerCount]) -> None:
        paused = 0
        with transaction.atomic():
            for row in queryset.select_for_update():
                if row.count == 0:
                    continue
                row.paused_count, before, row.count = row.count, row.count, 0
                row.save(update_fields=["count", "paused_count"])
                self.log_change(request, row, f"Paused: count {before} → 0.")
                paused += 1
        self.message_user(request, f"Paused {paused} queue list(s).", messages.SUCCESS)

    @admin.action(description="Restore the count a pause saved", permissions=["change"])
    def restore(self, request: HttpRequest, queryset: QuerySet[WorkerCount]) -> None:
        restored = 0
        with transaction.atomic():
            for row in queryset.select_for_update():
                if row.paused_count is None:
                    continue
                before, row.count, row.paused_count = row.count, row.paused_count, None
                row.save(update_fields=["count", "paused_count"])
                self.log_change(request, row, f"Restored: count {before} → {row.count}.")
                restored += 1
        self.message_user(request, f"Restored {restored} queue list(s).", messages.SUCCESS)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            self.warn_about_ceilings(request)
            self.warn_about_memory(request)
        user = request.user
        if user.has_perm("resque_pool.view_dashboard") or user.has_perm(
            "resque_pool.change_dashboard"
        ):
            extra_context = {**(extra_context or {}), "dashboard_url": base.url("changelist")}
        return super().changelist_view(request, extra_context)

    def warn_about_ceilings(self, request: HttpRequest) -> None:
        """Warn when the rows a live database pool merges add up past the ceiling that
        pool applies (it then keeps its last good counts, so nothing forks, but the edit
        does not take effect there either)."""
        seen = set()
        for state in self.pools_now(request) or ():
            if state.get("source", "database") != "database":
                continue  # a file or a loader: the rows do not apply to it
            environment, pool = str(state.get("environment") or ""), str(state.get("pool") or "")
            ceiling = state.get("max_workers")
            if not isinstance(ceiling, int) or isinstance(ceiling, bool):
                ceiling = int(settings.RESQUE_POOL_MAX_WORKERS)
            if (environment, pool, ceiling) in seen:
                continue
            seen.add((environment, pool, ceiling))
            total = sum(WorkerCount.objects.counts_for(environment, pool).values())
            if total > ceiling:
                where = f"pool {pool}" + (f", environment {environment}" if environment else "")
                self.message_user(
                    request,
                    f"The rows for {where} add up to {total} workers, more than its ceiling "
                    f"of {ceiling} (RESQUE_POOL_MAX_WORKERS): it keeps running its last good "
                    "counts until they fit.",
                    messages.WARNING,
                )

    def warn_about_memory(self, request: HttpRequest) -> None:
        """Warn about each live pool whose memory budget keeps it from forking workers
        its counts ask for (capacity/memory.py; docs/capacity.md)."""
        for state in self.pools_now(request) or ():
            found = state.get("memory")
            if not found or not found["refused"]:
                continue
            self.message_user(
                request,
                f"Pool {state.get('pool') or ''} ({state.get('id')}) is not forking "
                f"{found['refused']} worker(s): its memory budget is full ({found['used_mb']} "
                f"of {found['budget_mb']} MB used, a worker takes about {found['worker_mb']} "
                "MB). Lower the counts or raise RESQUE_POOL_MEMORY_BUDGET_MB.",
                messages.WARNING,
            )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """No objects: its URLs are the dashboard's pages (listed in the app index)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: base.View) -> Callable[..., HttpResponse]:
            def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                base.check_permissions(self, request, view)  # before anything reads Redis
                try:
                    response = view(self, request, *args, **kwargs)
                    if hasattr(response, "render"):
                        response.render()  # template errors from Redis data surface here
                    return response
                except redis_lib.RedisError as error:
                    return base.redis_unavailable(self, request, error)

            update_wrapper(guarded, view)
            return self.admin_site.admin_view(guarded)

        return [
            path(route, wrap(view), name="resque_pool_dashboard_" + name)
            for route, view, name in urls.ROUTES
        ]
