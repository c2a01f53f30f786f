"""The ``Schedule`` admin: validated edits, last and next run, and "run now".

Registered by ``resque_pool.admin`` (which imports this module). Permissions are the
model's own; "run now" needs ``change_schedule`` and is logged in the admin log.
"""

from __future__ import annotations

from datetime import datetime

import redis as redis_lib
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from resque_pool.pool.config_error import clip
from resque_pool.scheduler import recurring, timing
from resque_pool.scheduler.models import Schedule


class RunsState:
    """What Redis says about every schedule's runs, read once per changelist request."""

    def __init__(self) -> None:
        try:
            self.state: recurring.RunsState | None = recurring.RunsState.read()
        except redis_lib.RedisError:
            self.state = None


class RunColumn:
    """The "last run" or "next run" column, sharing one ``RunsState`` per request."""

    def __init__(self, state: RunsState, which: str) -> None:
        self.state = state
        self.which = which
        self.__name__ = f"{which}_run"
        self.short_description = f"{which} run"

    def __call__(self, obj: Schedule) -> str:
        state = self.state.state
        if state is None:
            return format_html('<span title="{}">?</span>', "Redis could not be read")
        if self.which == "last":
            return _when(state.lasts.get(obj.name))
        if not obj.enabled:
            return "(disabled)"
        # The leader's own error first (it may differ from ours: another registry, a hook).
        error = state.errors.get(obj.name)
        if error is None:
            try:
                return _when(recurring.next_run(obj, state))
            except Exception as problem:  # noqa: BLE001 (one bad row never fails the page)
                error = recurring.describe(problem)
        return format_html('<span class="errornote-inline">error: {}</span>', clip(error))


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    try:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    except (OverflowError, ValueError):
        return value.isoformat()  # near the ends of the calendar: no local time for it


class ScheduleForm(forms.ModelForm):
    # The model's field would say "greater than or equal to 0" for -1 and the model's
    # clean() "at least one second" for 0: one rule, so one message, from here.
    interval = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=timing.MAX_INTERVAL,
        help_text=Schedule._meta.get_field("interval").help_text
        + f" At most one year ({timing.MAX_INTERVAL} seconds).",
        error_messages={
            "min_value": "The interval is at least one second.",
            "max_value": f"The interval is at most one year ({timing.MAX_INTERVAL} seconds).",
        },
    )

    class Meta:
        model = Schedule
        fields = "__all__"


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
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
        # The admin capitalises the first letter of every message, so the messages start
        # with a word of ours: a schedule's name (every5) is shown as it is spelled.
        for schedule in queryset:
            error = schedule.job_error()
            if error:
                self.message_user(request, f"Schedule {schedule.name}: {error}", messages.ERROR)
                continue
            try:
                queue = recurring.run_now(schedule)
            except (redis_lib.RedisError, ValueError) as error:
                self.message_user(request, f"Schedule {schedule.name}: {error}", messages.ERROR)
                continue
            if not queue:
                self.message_user(
                    request,
                    f"Schedule {schedule.name}: a before_enqueue hook cancelled it",
                    messages.WARNING,
                )
                continue
            self.log_change(request, schedule, f"Run now: queued on {queue}.")
            self.message_user(
                request, f"Schedule {schedule.name}: queued on {queue}.", messages.SUCCESS
            )
