"""Every setting django-resque-pool reads, with its default, in one place.

Code reads ``from resque_pool.conf import settings`` and then ``settings.RESQUE_NAMESPACE``;
a project overrides any of these in its Django settings.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Redis holding queues, workers, stats and failures (rediss:// and passwords work).
    "RESQUE_REDIS_URL": "redis://localhost:6379/0",
    # Key prefix, as Ruby's Resque (redis-namespace) uses it.
    "RESQUE_NAMESPACE": "resque",
    # Dotted path to a callable (environment) -> {"q1,q2": count}; optional reset().
    "RESQUE_POOL_CONFIG_LOADER": None,
    # Seconds between loader calls in the manager.
    "RESQUE_POOL_LOADER_PERIOD": 1.0,
    # Fork a child per job (Resque's default); the FORK_PER_JOB env var overrides it.
    "RESQUE_FORK_PER_JOB": True,
    # Seconds between worker heartbeats (Resque.heartbeat_interval).
    "RESQUE_HEARTBEAT_INTERVAL": 60,
    # A heartbeat older than this many seconds marks a worker dead (Resque.prune_interval).
    "RESQUE_PRUNE_INTERVAL": 300,
    # When the manager cleans up a worker that died mid-job: requeue the job instead of
    # recording a DirtyExit failure.
    "RESQUE_REQUEUE_DIRTY_JOBS": False,
    # Seconds a pool's published live state survives without a refresh.
    "RESQUE_POOL_STATE_TTL": 30,
}


class Settings:
    """Reads a setting from Django's settings, falling back to ``DEFAULTS``."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown django-resque-pool setting {name!r}")
        return getattr(django_settings, name, DEFAULTS[name])


settings = Settings()
