"""The ``Schedule`` admin: validated edits, last and next run, and "run now".

Registered by ``resque_pool.admin`` (which imports this module). Permissions are the
model's own; "run now" needs ``change_schedule`` and is logged in the admin log.
"""

from __future__ import annotations

from datetime import datetime

import redis as redis_lib
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from resque_pool.scheduler import recurring
from resque_pool.scheduler.models import Schedule


class RunsState:
    """What Redis says about every schedule's runs, read once per changelist request."""

    def __init__(self) -> None:
        try:
            self.lasts: dict | None = recurring.last_runs()
            self.slots: dict | None = recurring.slots()
        except redis_lib.RedisError:
            self.lasts = self.slots = None


class RunColumn:
    """The "last run" or "next run" column, sharing one ``RunsState`` per request."""

    def __init__(self, state: RunsState, which: str) -> None:
        self.state = state
        self.which = which
        self.__name__ = f"{which}_run"
        self.short_description = f"{which} run"

    def __call__(self, obj: Schedule) -> str:
        if self.state.lasts is None or self.state.slots is None:
            return format_html('<span title="{}">?</span>', "Redis could not be read")
        last = self.state.lasts.get(obj.name)
        if self.which == "last":
            return _when(last)
        if not obj.enabled:
            return "(disabled)"
        try:
            return _when(
                obj.next_run(recurring.base_time(obj, last, self.state.slots.get(obj.name)))
            )
        except ValueError:
            return "?"


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "timing",
        "job_name",
        "queue_label",
        "enabled",
        "skip_if_queued",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "job_name", "description")
    fields = (
        "name",
        "cron",
        "interval",
        "time_zone",
        "job_name",
        "queue",
        "args",
        "enabled",
        "skip_if_queued",
        "description",
    )
    actions = ("run_now",)

    def get_list_display(self, request: HttpRequest) -> list:
        state = RunsState()
        display = list(super().get_list_display(request))
        display += [RunColumn(state, "last"), RunColumn(state, "next")]
        return display

    @admin.display(description="schedule")
    def timing(self, obj: Schedule) -> str:
        return obj.timing_text

    @admin.display(description="queue", ordering="queue")
    def queue_label(self, obj: Schedule) -> str:
        return obj.queue or "(the job's queue)"

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            error = schedule.job_error()
            if error:
                self.message_user(request, f"{schedule.name}: {error}", messages.ERROR)
                continue
            try:
                queue = recurring.run_now(schedule)
            except (redis_lib.RedisError, ValueError) as error:
                self.message_user(request, f"{schedule.name}: {error}", messages.ERROR)
                continue
            if not queue:
                self.message_user(
                    request,
                    f"{schedule.name}: a before_enqueue hook cancelled it",
                    messages.WARNING,
                )
                continue
            self.log_change(request, schedule, f"Run now: queued on {queue}.")
            self.message_user(request, f"{schedule.name}: queued on {queue}.", messages.SUCCESS)
