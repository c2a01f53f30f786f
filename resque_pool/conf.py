"""Every setting django-resque-pool reads: one row each, with its default, type and range.

Code reads ``from resque_pool.conf import settings`` and then ``settings.RESQUE_NAMESPACE``;
a project overrides any of these in its Django settings. ``resque_pool.checks`` validates
every row (``manage.py check``), so a new setting is one new row in ``SETTINGS`` below
(and one line in ``docs/settings.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

NUMBER = (int, float)


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default and the values ``manage.py check`` accepts.

    ``types`` are the accepted Python types (``bool`` is never taken for a number);
    ``optional`` also accepts ``None``; ``minimum``/``maximum`` bound a number, inclusive,
    except that ``positive`` asks for a number above zero; ``choices``, when given, are
    the only values accepted.
    """

    name: str
    default: Any
    types: tuple[type, ...]
    help: str
    optional: bool = False
    positive: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    def expected(self) -> str:
        """What the setting must be, in words, for error messages."""
        if self.choices is not None:
            return " or ".join(repr(choice) for choice in self.choices)
        if self.types == (bool,):
            text = "True or False"
        elif self.types == NUMBER:
            text = "a number" if not self.positive else "a positive number"
        elif self.types == (int,):
            text = "an integer" if not self.positive else "a positive integer"
        elif self.types == (str,):
            text = "a string"
        else:
            text = " or ".join(kind.__name__ for kind in self.types)
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        if bounds:
            text += " " + " and ".join(bounds)
        return text + (" or None" if self.optional else "")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "RESQUE_REDIS_URL",
        "redis://localhost:6379/0",
        (str,),
        "Redis holding queues, workers, stats and failures (rediss://, unix:// and "
        "passwords work).",
    ),
    Setting(
        "RESQUE_NAMESPACE",
        "resque",
        (str,),
        "Key prefix, as Ruby's Resque (redis-namespace) uses it.",
    ),
    Setting(
        "RESQUE_REDIS_SENTINELS",
        None,
        (list, tuple),
        "Redis Sentinel addresses, ['host:port', ...]: every process asks them for the "
        "master of RESQUE_REDIS_SENTINEL_SERVICE and follows a failover; they win over the "
        "URL's host and port (its password, database number and TLS still apply).",
        optional=True,
    ),
    Setting(
        "RESQUE_REDIS_SENTINEL_SERVICE",
        None,
        (str,),
        "The master's name in the sentinels' configuration (needed with RESQUE_REDIS_SENTINELS).",
        optional=True,
    ),
    Setting(
        "RESQUE_REDIS_SENTINEL_PASSWORD",
        None,
        (str,),
        "The sentinels' own password (their requirepass), if they have one; the master's "
        "is the URL's.",
        optional=True,
    ),
    Setting(
        "RESQUE_REDIS_SENTINEL_USERNAME",
        None,
        (str,),
        "The sentinels' ACL user, with RESQUE_REDIS_SENTINEL_PASSWORD as its password; the "
        "master's user is the URL's.",
        optional=True,
    ),
    Setting(
        "RESQUE_REDIS_CLUSTER",
        False,
        (bool,),
        "Redis Cluster: RESQUE_REDIS_URL names one node (or the service's configuration "
        "endpoint) and every process follows the master serving the namespace's slot; "
        "RESQUE_NAMESPACE needs a hash tag, e.g. '{resque}'.",
    ),
    Setting(
        "RESQUE_ENQUEUE_WAIT_REPLICAS",
        0,
        (int,),
        "enqueue() and the Tasks backend wait (Redis WAIT) until this many replicas have "
        "the pushed job, at most RESQUE_ENQUEUE_WAIT_TIMEOUT; 0: no wait.",
        minimum=0,
    ),
    Setting(
        "RESQUE_ENQUEUE_WAIT_TIMEOUT",
        1.0,
        NUMBER,
        "Seconds enqueue() waits for RESQUE_ENQUEUE_WAIT_REPLICAS replicas; fewer by then is "
        "logged and returned (EnqueuedJob.replicas), not raised: the job is pushed.",
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_CONFIG_LOADER",
        None,
        (str,),
        "Dotted path to a callable (environment) -> {'q1,q2': count}; optional reset().",
        optional=True,
    ),
    Setting(
        "RESQUE_POOL_DRAIN_TIMEOUT",
        600,
        NUMBER,
        "Seconds a worker of a retiring generation (after a HUP deploy) may go on with its "
        "job before it is stopped; the job then follows the loss policy (None: no bound).",
        optional=True,
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_LOADER_PERIOD",
        1.0,
        NUMBER,
        "Seconds between loader calls in the manager.",
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_AUTOSCALE_INTERVAL",
        2.0,
        NUMBER,
        "Seconds between two looks at an autoscaled list's queues (one pipelined round "
        "trip; only pools with a list that has a maximum look).",
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_AUTOSCALE_LATENCY",
        0.0,
        NUMBER,
        "Seconds the oldest waiting job of an autoscaled list must have waited before the "
        "list grows (0: as soon as jobs outnumber its idle workers).",
        minimum=0,
    ),
    Setting(
        "RESQUE_POOL_AUTOSCALE_COOLDOWN",
        30.0,
        NUMBER,
        "Seconds an autoscaled list must need fewer workers before its idle ones stop "
        "(Celery's autoscaler keep-alive).",
        minimum=0,
    ),
    Setting(
        "RESQUE_FORK_PER_JOB",
        True,
        (bool,),
        "Fork a child per job (Resque's default); the FORK_PER_JOB env var overrides it.",
    ),
    Setting(
        "RESQUE_HEARTBEAT_INTERVAL",
        60,
        NUMBER,
        "Seconds between worker heartbeats (Resque.heartbeat_interval).",
        positive=True,
    ),
    Setting(
        "RESQUE_PRUNE_INTERVAL",
        300,
        NUMBER,
        "A heartbeat older than this many seconds marks a worker dead (Resque.prune_interval).",
        positive=True,
    ),
    Setting(
        "RESQUE_REQUEUE_DIRTY_JOBS",
        False,
        (bool,),
        "A job whose process died under it (job child or worker killed, a dead worker found "
        "by its manager or a prune): push it back to the head of its queue instead of "
        "recording a DirtyExit failure. At-least-once: such a job may run twice.",
    ),
    Setting(
        "RESQUE_MAX_INTERRUPTIONS",
        3,
        (int,),
        "With requeueing on: the interruption that brings a job to this count ends it as a "
        "DirtyExit failure instead, so a job that kills its process cannot do so forever.",
        minimum=1,
    ),
    Setting(
        "RESQUE_JOB_TIMEOUT",
        None,
        NUMBER,
        "Seconds a job may run before it is ended as a JobTimeout failure (None: no limit); "
        "@job(timeout=...) and a queue list's own limit win over it.",
        optional=True,
        positive=True,
    ),
    Setting(
        "RESQUE_WORKER_MAX_JOBS",
        None,
        (int,),
        "A worker exits after this many jobs (plus up to 10% jitter) and its manager "
        "replaces it at once (None: never); a queue list's own limit wins.",
        optional=True,
        positive=True,
    ),
    Setting(
        "RESQUE_WORKER_MAX_MEMORY_MB",
        None,
        NUMBER,
        "A worker whose resident memory passes this many MB (less up to 10% jitter) exits "
        "after its current job and is replaced at once (None: never); a queue list's own "
        "limit wins.",
        optional=True,
        positive=True,
    ),
    Setting(
        "RESQUE_WORKER_HANG_TIMEOUT",
        60,
        NUMBER,
        "A pool worker whose main loop made no progress for this many seconds (SIGSTOPped, "
        "deadlocked) is killed and replaced by its manager; its job follows the loss policy "
        "(None: never).",
        optional=True,
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_STATE_TTL",
        30,
        NUMBER,
        "Seconds a pool's published live state survives without a refresh.",
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_MAX_WORKERS",
        256,
        (int,),
        "Most workers one pool runs in total; counts adding up to more are refused.",
        positive=True,
    ),
    Setting(
        "RESQUE_POOL_MEMORY_BUDGET_MB",
        None,
        (int,),
        "MB the pool's whole process tree (PSS) may use: a worker that would take it past "
        "this is not forked until there is room. None: the container's memory limit "
        "(cgroup v2 memory.max or v1 memory.limit_in_bytes) less 10%, no budget without a "
        "limit; 0: no budget.",
        optional=True,
        minimum=0,
    ),
    Setting(
        "RESQUE_SCHEDULER",
        True,
        (bool,),
        "Run a scheduler child in each resque_pool (moves due delayed jobs; fires "
        "schedules); resque_pool --no-scheduler turns it off for one pool.",
    ),
    Setting(
        "RESQUE_SCHEDULER_LEADER_TTL",
        30,
        NUMBER,
        "Seconds the leader lock for recurring schedules outlives its holder; another "
        "scheduler takes over within about this long.",
        minimum=2,
    ),
    Setting(
        "RESQUE_FAILURE_BACKENDS",
        ("resque_pool.failure_backends.RedisFailedList",),
        (list, tuple),
        "Dotted paths of failure backends (resque_pool.failure_backends.Backend), after "
        "the failed list, which stays first: each failure written to Redis also goes to "
        "the others, once, after its transaction.",
    ),
    Setting(
        "RESQUE_LOG_FORMAT",
        "plain",
        (str,),
        "How the pool, its workers, job children and scheduler log: 'plain' lines, or "
        "'json' (one object per line with time, level, logger, pid, worker, queue, job).",
        choices=("plain", "json"),
    ),
    Setting(
        "RESQUE_METRICS_TOKEN",
        None,
        (str,),
        "Bearer token that lets a scraper read the metrics view (resque_pool.metrics); "
        "None: only logged-in users with the dashboard's view permission may.",
        optional=True,
    ),
    Setting(
        "RESQUE_METRICS_JOB_DURATIONS",
        True,
        (bool,),
        "Workers add each job's duration to the metrics view's histogram, inside "
        "done_working's transaction (two more commands, no round trip); False saves them.",
    ),
    Setting(
        "RESQUE_TASK_RESULT_TTL",
        86400,
        (int,),
        "Seconds a finished task's result stays in Redis (resque_pool.tasks.ResqueBackend).",
        positive=True,
    ),
)

BY_NAME: dict[str, Setting] = {row.name: row for row in SETTINGS}
DEFAULTS: dict[str, Any] = {row.name: row.default for row in SETTINGS}


class Settings:
    """Reads a setting from Django's settings, falling back to its row's default.

    A value read once is kept (as Django's own ``settings`` object keeps what it read):
    a worker reads a few of them per job. ``override_settings`` and pytest-django's
    ``settings`` fixture send ``setting_changed``, which drops the kept value."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown django-resque-pool setting {name!r}")
        value = self.__dict__[name] = getattr(django_settings, name, DEFAULTS[name])
        return value

    def forget(self, name: str) -> None:
        self.__dict__.pop(name, None)


settings = Settings()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    settings.forget(setting)


setting_changed.connect(_setting_changed, dispatch_uid="resque_pool.conf")
