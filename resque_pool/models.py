"""Worker counts per queue list, edited in the admin and read by every running pool."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from resque_pool.conf import settings
from resque_pool.resque.queue_lists import normalize_queue_list


class WorkerCountQuerySet(models.QuerySet):
    def layers(self, environment: str | None, pool: str | None, *fields: str) -> list[list]:
        """``fields`` of the rows that apply to one pool, least specific first: rows for
        every environment and every pool, rows for this environment, rows for this pool,
        rows for both (as resque-pool merges its YAML file's root with an environment
        section). Inside a layer, by id: the order in which operators added the lists.
        ``config_for`` folds them."""
        rows = self.filter(
            models.Q(environment="") | models.Q(environment=environment or ""),
            models.Q(pool="") | models.Q(pool=pool or ""),
        ).values_list("environment", "pool", *fields)
        # Rank 0..3: defaults, environment, pool, both; the index keeps the id order.
        ranked = sorted(
            (bool(env) + 2 * bool(pl), index, values)
            for index, (env, pl, *values) in enumerate(rows)
        )
        return [values for _rank, _index, values in ranked]

    def config_for(
        self, environment: str | None, pool: str | None
    ) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]:
        """One pool's counts, limits and maximums from one query, the layers folded once.

        A count and its maximum go together: a more specific row overrides both for its
        queue list (its blank maximum makes the list fixed again). A limit is overridden
        per limit (a more specific row's blank inherits the value of a more general one).
        All in configuration order; lists without any limit are left out of the limits,
        fixed lists out of the maximums."""
        counts: dict[str, int] = {}
        limits: dict[str, dict[str, int]] = {}
        maximums: dict[str, int] = {}
        for queues, count, max_count, *values in self.layers(
            environment, pool, "queues", "count", "max_count", *LIMIT_FIELDS
        ):
            counts[queues] = count
            maximums.pop(queues, None)
            if max_count is not None:
                maximums[queues] = max_count
            for name, value in zip(LIMIT_FIELDS, values, strict=True):
                if value is not None:
                    limits.setdefault(queues, {})[name] = value
        return counts, limits, maximums

    def counts_for(self, environment: str | None, pool: str | None) -> dict[str, int]:
        """The merged ``{"q1,q2": count}`` for one pool (see ``config_for``)."""
        return self.config_for(environment, pool)[0]

    def limits_for(self, environment: str | None, pool: str | None) -> dict[str, dict[str, int]]:
        """``{"q1,q2": {"job_timeout": 30, ...}}`` for one pool (see ``config_for``)."""
        return self.config_for(environment, pool)[1]


# A queue list's own limits (worker/limits.py); blank means the setting's value.
LIMIT_FIELDS = ("job_timeout", "max_jobs", "max_memory_mb")


class WorkerCount(models.Model):
    queues = models.CharField(
        max_length=1000,
        help_text="Comma-separated queue names in priority order, e.g. high,low or *, !slow",
    )
    count = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(0)],
        help_text="Workers for this queue list; 0 means none here. With a maximum, the "
        "fewest it runs.",
    )
    max_count = models.PositiveIntegerField(
        "maximum",
        null=True,
        blank=True,
        help_text="Autoscale: grow to at most this many workers while jobs wait, back to "
        "the count when idle (blank: the count is fixed).",
    )
    environment = models.CharField(
        max_length=100, blank=True, default="", help_text="Blank means every environment."
    )
    pool = models.CharField(
        max_length=200, blank=True, default="", help_text="Blank means every pool (host)."
    )
    job_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds a job of this list may run (blank: RESQUE_JOB_TIMEOUT); a job's "
        "own @job(timeout=...) wins.",
    )
    max_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A worker of this list is replaced after this many jobs (blank: "
        "RESQUE_WORKER_MAX_JOBS).",
    )
    max_memory_mb = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A worker of this list is replaced once its memory passes this many MB "
        "(blank: RESQUE_WORKER_MAX_MEMORY_MB).",
    )
    # Set by the admin's "pause" action to remember the count that "restore" brings back;
    # the pool ignores it and runs ``count`` as it is.
    paused_count = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Count before the list was paused."
    )

    objects = WorkerCountQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["queues", "environment", "pool"], name="resque_pool_unique_worker_count"
            )
        ]

    def __str__(self) -> str:
        bounds = f"{self.count}..{self.max_count}" if self.max_count is not None else self.count
        scope = ", ".join(
            part
            for part in (
                self.environment and f"env {self.environment}",
                self.pool and f"pool {self.pool}",
            )
            if part
        )
        return f"{self.queues}: {bounds}" + (f" ({scope})" if scope else "")

    def clean(self) -> None:
        super().clean()
        try:
            self.queues = normalize_queue_list(self.queues)
        except ValidationError as error:
            raise ValidationError({"queues": error.messages}) from None
        self.environment = (self.environment or "").strip()
        self.pool = (self.pool or "").strip()
        for name in LIMIT_FIELDS:
            if getattr(self, name) == 0:
                raise ValidationError(
                    {name: "Leave it blank for no limit of its own, or give 1 or more."}
                )
        # Checked here rather than by a field validator: a validator would need a migration.
        ceiling = int(settings.RESQUE_POOL_MAX_WORKERS)
        if self.count is not None and self.count > ceiling:
            raise ValidationError(
                {"count": f"A pool runs at most {ceiling} (RESQUE_POOL_MAX_WORKERS) workers."}
            )
        if self.max_count is not None:
            if self.max_count == 0:
                raise ValidationError(
                    {"max_count": "Leave it blank for a fixed count, or give 1 or more."}
                )
            if self.count is not None and self.max_count < self.count:
                raise ValidationError(
                    {"max_count": f"The maximum must be at least the count ({self.count})."}
                )
            if self.max_count > ceiling:
                raise ValidationError(
                    {
                        "max_count": f"A pool runs at most {ceiling} (RESQUE_POOL_MAX_WORKERS) "
                        "workers."
                    }
                )

    def save(self, *args, **kwargs) -> None:
        # Normalise on every save path, not only forms, so the pool never sees " a, b".
        self.queues = normalize_queue_list(self.queues)
        super().save(*args, **kwargs)


class Dashboard(models.Model):
    """No table: carries the permissions of the admin's live Resque dashboard.

    ``view_dashboard`` lets staff see queues, workers, failures and stats;
    ``change_dashboard`` also lets them retry, remove and clear.
    """

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "Resque dashboard"
        verbose_name_plural = "Resque dashboard"


# The recurring schedules' model lives with the scheduler; importing it here makes it
# part of this app (migration 0003_schedule).
from resque_pool.scheduler.models import Schedule  # noqa: E402, F401
