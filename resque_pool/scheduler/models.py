"""``Schedule``: a recurring job, edited in the admin and read by the leading scheduler.

Defined here and imported by ``resque_pool.models`` so it belongs to the ``resque_pool``
app (migration ``0003_schedule``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from resque_pool.resque.queue_lists import check_queue_name
from resque_pool.resque.registry import registry
from resque_pool.scheduler import timing


class Schedule(models.Model):
    name = models.CharField(
        max_length=200,
        unique=True,
        help_text="Unique; the key of delayed:last_enqueued_at, as in resque-scheduler.",
    )
    cron = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Cron expression: 5 fields, or 6 with seconds first; may end with a time "
        "zone, e.g. '0 5 * * * America/Chicago'. Leave blank to use an interval.",
    )
    interval = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Run every this many seconds (instead of a cron expression).",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="IANA zone the cron expression is read in; blank means TIME_ZONE.",
    )
    job_name = models.CharField(
        max_length=200, help_text="Registered job name, e.g. Archive or myapp.jobs.archive."
    )
    queue = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Blank means the job's own queue (required for a job only Ruby knows).",
    )
    args = models.JSONField(default=list, blank=True, help_text='A JSON list, e.g. [44, "x"].')
    enabled = models.BooleanField(default=True)
    skip_if_queued = models.BooleanField(
        default=False,
        help_text="Skip a run while the previous one is still waiting on its queue.",
    )
    description = models.TextField(blank=True, default="")
    # Runs are counted from the later of the last run and the last edit, so enabling or
    # editing a schedule never fires runs it missed before.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def timing_text(self) -> str:
        if self.cron:
            # A zone inside the expression overrides the schedule's: show only the one used.
            inline = timing.split_cron(self.cron)[1]
            zone = f" ({self.time_zone})" if self.time_zone and not inline else ""
            return f"cron {self.cron}{zone}"
        return f"every {self.interval}s"

    def full_clean(
        self,
        exclude: Any = None,
        validate_unique: bool = True,
        validate_constraints: bool = True,
    ) -> None:
        # A ModelForm excludes the fields it already refused (``interval: -1``, args that
        # are not JSON); clean() then leaves them alone, so that one mistake gives one
        # message, not a second one about the value the field kept (None, []).
        self._excluded = set(exclude or ())
        try:
            super().full_clean(exclude, validate_unique, validate_constraints)
        finally:
            del self._excluded

    def clean(self) -> None:
        excluded = getattr(self, "_excluded", set())
        errors: dict[str, Any] = {}
        has_cron = bool(self.cron.strip())
        has_interval = self.interval is not None
        if {"cron", "interval"} & excluded:
            pass  # the form already said what is wrong with the timing
        elif has_cron and has_interval:
            errors["cron"] = "Give either a cron expression or an interval, not both."
        elif not has_cron and not has_interval:
            errors["cron"] = "Give a cron expression or an interval."
        elif has_cron:
            try:
                timing.check_cron(self.cron)
            except timing.ScheduleError as error:
                errors["cron"] = str(error)
        else:
            try:
                timing.check_interval(self.interval)
            except timing.ScheduleError as error:
                errors["interval"] = str(error)
        try:
            timing.zone(self.time_zone)
        except timing.ScheduleError as error:
            errors["time_zone"] = str(error)
        if "args" not in excluded and not isinstance(self.args, list):
            errors["args"] = 'Arguments must be a JSON list, e.g. [44, "x"].'
        job_error = self.job_error(check_args="args" not in excluded)
        if job_error:
            errors["job_name"] = job_error
        if errors:
            raise ValidationError(errors)

    def job_error(self, check_args: bool = True) -> str | None:
        """Why this job cannot be pushed from here, or None. ``check_args=False`` leaves
        the arguments out (the form refused them already)."""
        definition = registry.get(self.job_name)
        if definition is None and not self.queue:
            names = ", ".join(registry.names()) or "none"
            return (
                f"No job is registered as {self.job_name!r}; give a queue to push it for "
                f"another worker (registered: {names})."
            )
        queue = self.queue or (definition.queue if definition else "")
        if not queue:
            return f"Job {self.job_name!r} has no queue; give one."
        try:
            check_queue_name(queue)
        except ValidationError as error:
            return error.messages[0]
        if check_args and definition is not None and isinstance(self.args, list):
            try:
                definition.check_arguments(list(self.args))
            except Exception as error:  # noqa: BLE001 (BadArguments: shown to the user)
                return str(error)
        return None

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after ``after`` (aware, UTC)."""
        if self.cron:
            return timing.next_cron(self.cron, self.time_zone, after)
        return timing.next_interval(float(self.interval or 0), after)
