"""The ``Schedule`` admin: validated edits, last and next run, and "run now".

Registered by ``resque_pool.dashboard.admin`` (which imports this module). Permissions are the
model's own; "run now" needs ``change_schedule`` and is logged in the admin log.
"""

from __future__ import annotations

import re
from datetime import datetime

import redis as redis_lib
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from resque_pool.config_error import clip
from resque_pool.models import Schedule
from resque_pool.scheduler import recurring, timing


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
    """The dashboard's one time format (date, time to the second, zone), free to wrap only
    between the date and the time, so that two time columns fit a 1280 px window."""
    if value is None:
        return "—"
    try:
        text = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    except (OverflowError, ValueError):
        return value.isoformat()  # near the ends of the calendar: no local time for it
    day, _, rest = text.partition(" ")
    return format_html('<span class="nowrap">{}</span> <span class="nowrap">{}</span>', day, rest)


_BREAK_AFTER = re.compile(r"([_.:/,])")


def breakable(text: str) -> str:
    """``text`` escaped, free to wrap after ``_ . : / ,``: schedule, job and queue names
    have no spaces, and unbroken they would widen the changelist past the window."""
    return mark_safe(_BREAK_AFTER.sub(r"\1<wbr>", escape(text)))  # noqa: S308 (escaped)


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
    # Fits beside the admin's two sidebars in a 1280 px window (as the worker counts do):
    # names wrap after their separators, the job and its queue share a column, "skip if
    # queued" is a tag under the timing, and "enabled" shows as "(disabled)" in the next
    # run (the filter on the right still selects by it).
    list_display = ("name_label", "timing", "job_label")
    list_display_links = ("name_label",)
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

    class Media:
        css = {"all": ("resque_pool/schedules.css",)}

    @admin.display(description="name", ordering="name")
    def name_label(self, obj: Schedule) -> str:
        return breakable(obj.name)

    @admin.display(description="schedule")
    def timing(self, obj: Schedule) -> str:
        tag = (
            format_html(' <span class="tag">{}</span>', "skip if queued")
            if obj.skip_if_queued
            else ""
        )
        return format_html("{}{}", breakable(obj.timing_text), tag)

    @admin.display(description="job and queue", ordering="job_name")
    def job_label(self, obj: Schedule) -> str:
        queue = breakable(obj.queue) if obj.queue else "the job's queue"
        return format_html('{}<br><span class="queue">on {}</span>', breakable(obj.job_name), queue)

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
