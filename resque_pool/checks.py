"""System checks for the settings django-resque-pool reads (one row each in ``conf.SETTINGS``).

Ids: E001 Redis URL scheme, E002 empty namespace, E003 loader not importable, E004 number
out of range, E005 wrong type, E006 the Tasks backend on Django 5.2 without the backport's
app, E007 Sentinel settings (an address that is not host:port, no service name, a user
without a password, a unix:// URL), E008 not one of the values a setting takes, E009
failure backends (the failed list not first, a path that cannot be imported or is no
backend), E010 Redis Cluster settings (a namespace without a hash tag, Sentinel too, a
unix:// URL, a database other than 0), E011 the metrics view in the URLconf without
prometheus-client; W001 a prune interval that would prune live workers, W002 a short
RESQUE_METRICS_TOKEN, W003 a RESQUE_POOL_MEMORY_BUDGET_MB above the container's memory
limit (a bad value itself is E004 or E005, as for every setting). (The Tasks backend's
own checks, ``resque_pool.tasks.E…``, run with the framework's.)
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import django
from django.apps import AppConfig, apps
from django.conf import settings as django_settings
from django.core import checks
from django.utils.module_loading import import_string

from resque_pool import failure_backends
from resque_pool.capacity import cgroup
from resque_pool.conf import SETTINGS, Setting, settings
from resque_pool.debug import mask_url
from resque_pool.metrics import views as metrics_views
from resque_pool.resque.cluster import hash_tag
from resque_pool.resque.connection import sentinel_addresses

# The tag of this app's checks: the commands that run only these name it in
# ``requires_system_checks``; ``manage.py check --tag resque_pool`` runs them alone.
TAG = "resque_pool"

# Values never quoted in a message: they may hold a password.
_SECRET = frozenset({"RESQUE_REDIS_URL", "RESQUE_REDIS_SENTINEL_PASSWORD", "RESQUE_METRICS_TOKEN"})
# A bearer token shorter than this is warned about (W002).
METRICS_TOKEN_MIN_LENGTH = 16
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


@checks.register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    valid: dict[str, Any] = {}
    for row in SETTINGS:
        value = getattr(settings, row.name)
        problem = _problem(row, value)
        if problem is None:
            valid[row.name] = value
        else:
            errors.append(problem)
    errors.extend(_specific_checks(valid))
    return errors


@checks.register(TAG)
def check_tasks_framework(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """On Django 5.2 the backport's checks (and so the backend's own) run only when its app
    is installed; without it a TASKS entry naming our backend would pass silently."""
    if django.VERSION >= (6, 0) or apps.is_installed("django_tasks"):
        return []
    tasks = getattr(django_settings, "TASKS", None) or {}
    ours = sorted(
        alias
        for alias, options in tasks.items()
        if isinstance(options, dict)
        and str(options.get("BACKEND", "")).startswith("resque_pool.tasks")
    )
    if not ours:
        return []
    return [
        checks.Error(
            f"TASKS[{ours[0]!r}] uses resque_pool.tasks.ResqueBackend on Django "
            f"{django.get_version()}, but 'django_tasks' (the backport of Django 6's tasks) is "
            "not in INSTALLED_APPS.",
            hint='pip install "django-resque-pool[tasks]" and add "django_tasks" to '
            "INSTALLED_APPS (or use Django 6).",
            id="resque_pool.E006",
        )
    ]


@checks.register(checks.Tags.urls)
def check_metrics_view(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The metrics view in the URLconf without prometheus-client would answer 500 at every
    scrape. (Tagged ``urls``, not ours: the pool's commands never load the URLconf.)"""
    if metrics_views.available() or not metrics_views.mounted():
        return []
    return [
        checks.Error(
            "resque_pool.metrics.views.metrics is in the URLconf but prometheus-client is "
            "not installed.",
            hint="pip install 'django-resque-pool[metrics]'",
            id="resque_pool.E011",
        )
    ]


def _problem(row: Setting, value: Any) -> checks.CheckMessage | None:
    """A type or range error for ``value`` against its row, or None when it fits."""
    if value is None and row.optional:
        return None
    # bool is an int subclass; True is never meant as a number of seconds.
    wrong_type = not isinstance(value, row.types) or (
        isinstance(value, bool) and bool not in row.types
    )
    if wrong_type:
        shown = "" if row.name in _SECRET else f"{_short.repr(value)} "
        return checks.Error(
            f"{row.name} must be {row.expected()}, not {shown}({type(value).__name__}).",
            hint=_defined_hint(row),
            id="resque_pool.E005",
        )
    if row.choices is not None and value not in row.choices:
        return checks.Error(
            f"{row.name} must be {row.expected()}, not {_short.repr(value)}.",
            hint=_defined_hint(row),
            id="resque_pool.E008",
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if (
        (row.positive and not value > 0)
        or (row.minimum is not None and not value >= row.minimum)
        or (row.maximum is not None and not value <= row.maximum)
    ):
        return checks.Error(
            f"{row.name} must be {row.expected()}, not {value!r}.",
            hint=_defined_hint(row),
            id="resque_pool.E004",
        )
    return None


def _defined_hint(row: Setting) -> str:
    return f"{row.help} Default: {row.default!r}."


def _specific_checks(valid: dict[str, Any]) -> list[checks.CheckMessage]:
    """Rules beyond type and range, for the settings whose type is already right."""
    errors: list[checks.CheckMessage] = []
    url = valid.get("RESQUE_REDIS_URL")
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        errors.append(
            checks.Error(
                "RESQUE_REDIS_URL must be a redis://, rediss:// or unix:// URL, "
                f"not {mask_url(url)!r}.",
                id="resque_pool.E001",
            )
        )
    errors.extend(_sentinel_checks(valid))
    errors.extend(_cluster_checks(valid))
    if valid.get("RESQUE_NAMESPACE") == "":
        errors.append(
            checks.Error("RESQUE_NAMESPACE must be a non-empty string.", id="resque_pool.E002")
        )
    loader = valid.get("RESQUE_POOL_CONFIG_LOADER")
    if loader:
        try:
            import_string(loader)
        except ImportError as error:
            errors.append(
                checks.Error(
                    f"RESQUE_POOL_CONFIG_LOADER {loader!r} cannot be imported: {error}",
                    id="resque_pool.E003",
                )
            )
    backends = valid.get("RESQUE_FAILURE_BACKENDS")
    if backends is not None:
        errors.extend(_failure_backend_checks(list(backends)))
    heartbeat = valid.get("RESQUE_HEARTBEAT_INTERVAL")
    prune = valid.get("RESQUE_PRUNE_INTERVAL")
    if heartbeat is not None and prune is not None and prune <= heartbeat:
        errors.append(
            checks.Warning(
                f"RESQUE_PRUNE_INTERVAL ({prune:g}) is not above RESQUE_HEARTBEAT_INTERVAL "
                f"({heartbeat:g}): live workers would be pruned between two heartbeats.",
                hint="Resque's default is five heartbeat intervals.",
                id="resque_pool.W001",
            )
        )
    token = valid.get("RESQUE_METRICS_TOKEN")
    if token is not None and len(token) < METRICS_TOKEN_MIN_LENGTH:
        # Never quoted: it is a secret, short or not.
        errors.append(
            checks.Warning(
                f"RESQUE_METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters: "
                "anyone who can reach the metrics view could guess it.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="resque_pool.W002",
            )
        )
    errors.extend(_memory_budget_checks(valid))
    return errors


def _memory_budget_checks(valid: dict[str, Any]) -> list[checks.CheckMessage]:
    """A budget above the container's limit: the kernel's OOM killer, not the budget,
    would act first (the budget is meant to be the lower of the two)."""
    budget_mb = valid.get("RESQUE_POOL_MEMORY_BUDGET_MB")
    if not budget_mb:
        return []
    limit = cgroup.container_limit()
    if limit.bytes is None or budget_mb * 2**20 <= limit.bytes:
        return []
    return [
        checks.Warning(
            f"RESQUE_POOL_MEMORY_BUDGET_MB ({budget_mb}) is above this container's memory "
            f"limit ({limit.bytes // 2**20} MB, {limit.source}): the OOM killer would act "
            "before the budget does.",
            hint="Leave the setting unset (the limit less 10%) or set it below the limit.",
            id="resque_pool.W003",
        )
    ]


def _sentinel_checks(valid: dict[str, Any]) -> list[checks.CheckMessage]:
    sentinels = valid.get("RESQUE_REDIS_SENTINELS")
    if not sentinels:
        return []
    problems: list[tuple[str, str | None]] = []
    try:
        sentinel_addresses(sentinels)
    except ValueError as error:
        problems.append(
            (
                f"RESQUE_REDIS_SENTINELS: {error}.",
                "A list of 'host:port' strings, e.g. ['10.0.0.1:26379', '10.0.0.2:26379'].",
            )
        )
    if not valid.get("RESQUE_REDIS_SENTINEL_SERVICE"):
        problems.append(
            (
                "RESQUE_REDIS_SENTINELS is set but RESQUE_REDIS_SENTINEL_SERVICE is not.",
                "The master's name in the sentinels' configuration (sentinel monitor NAME ...).",
            )
        )
    if valid.get("RESQUE_REDIS_SENTINEL_USERNAME") and not valid.get(
        "RESQUE_REDIS_SENTINEL_PASSWORD"
    ):
        problems.append(
            (
                "RESQUE_REDIS_SENTINEL_USERNAME is set but RESQUE_REDIS_SENTINEL_PASSWORD is not.",
                "An ACL user authenticates with a password (AUTH user password).",
            )
        )
    url = valid.get("RESQUE_REDIS_URL")
    if url is not None and url.startswith("unix://"):
        problems.append(
            (
                "RESQUE_REDIS_SENTINELS needs a redis:// or rediss:// RESQUE_REDIS_URL, not a "
                "unix:// one.",
                "The URL's password, database number and TLS apply to the master the "
                "sentinels name; its host and port are not used.",
            )
        )
    return [checks.Error(text, hint=hint, id="resque_pool.E007") for text, hint in problems]


def _cluster_checks(valid: dict[str, Any]) -> list[checks.CheckMessage]:
    if not valid.get("RESQUE_REDIS_CLUSTER"):
        return []
    problems: list[str] = []
    namespace = valid.get("RESQUE_NAMESPACE")
    if namespace and hash_tag(namespace) is None:
        problems.append(
            f"RESQUE_REDIS_CLUSTER needs a RESQUE_NAMESPACE with a hash tag such as "
            f"'{{resque}}', not {_short.repr(namespace)}: its keys would spread over slots."
        )
    if valid.get("RESQUE_REDIS_SENTINELS"):
        problems.append("RESQUE_REDIS_CLUSTER and RESQUE_REDIS_SENTINELS exclude each other.")
    url = valid.get("RESQUE_REDIS_URL") or ""
    if url.startswith("unix://"):
        problems.append("RESQUE_REDIS_CLUSTER needs a redis:// or rediss:// RESQUE_REDIS_URL.")
    elif url.startswith(("redis://", "rediss://")):
        database = urlparse(url).path.strip("/") or "0"
        if database != "0":
            problems.append(
                f"RESQUE_REDIS_CLUSTER: Redis Cluster has only database 0, not {database}."
            )
    return [checks.Error(text, id="resque_pool.E010") for text in problems]


def _failure_backend_checks(paths: list[Any]) -> list[checks.CheckMessage]:
    """The failed list first (its entry is the job's outcome, see failure_backends.py),
    then importable ``Backend`` subclasses."""
    if not paths or paths[0] != failure_backends.REDIS:
        return [
            checks.Error(
                f"RESQUE_FAILURE_BACKENDS must start with {failure_backends.REDIS!r}, "
                f"not {_short.repr(paths[0] if paths else None)}.",
                hint="The failed list stays first; list your backends after it.",
                id="resque_pool.E009",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for path in paths[1:]:
        problem = None
        try:
            backend = import_string(path) if isinstance(path, str) else None
        except ImportError as error:
            problem = f"cannot be imported: {error}"
        else:
            if not (isinstance(backend, type) and issubclass(backend, failure_backends.Backend)):
                problem = "is not a subclass of resque_pool.failure_backends.Backend"
        if problem:
            errors.append(
                checks.Error(
                    f"RESQUE_FAILURE_BACKENDS: {_short.repr(path)} {problem}",
                    id="resque_pool.E009",
                )
            )
    return errors
