"""Where the counts come from: a file, a custom loader, or the database; and ``Throttled``.

A loader is any callable ``(environment) -> {"q1,q2": count}`` with an optional ``reset()``
that the manager calls on HUP. The manager validates whatever a loader returns with
``config.validate_counts``, so a custom loader cannot hand it ``" a, b"`` or ``True``; and
what an optional ``limits(environment)`` returns with ``config.validate_limits``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from resque_pool.conf import settings
from resque_pool.config_error import ConfigError
from resque_pool.pool.config import FileLoader, validate_limits

Loader = Callable[[str | None], Any]


class DatabaseLoader:
    """Counts from ``WorkerCount`` rows, merged by environment and pool (one query a call)."""

    def __init__(self, pool: str) -> None:
        self.pool = pool

    def __call__(self, environment: str | None) -> dict[str, int]:
        from resque_pool.models import WorkerCount

        return WorkerCount.objects.counts_for(environment, self.pool)

    def limits(self, environment: str | None) -> dict[str, dict[str, int]]:
        """The queue lists' own limits (``WorkerCount`` rows), merged as counts are."""
        from resque_pool.models import WorkerCount

        return WorkerCount.objects.limits_for(environment, self.pool)

    def reset(self) -> None:
        """Nothing is cached; the database is read on every call."""

    def __str__(self) -> str:
        return "database"


def loader_limits(loader: Loader, environment: str | None, source: str) -> dict[str, dict]:
    """The limits per queue list of a loader with ``limits(environment)``, validated and
    normalised as a file's ``limits:`` mapping ({} without the method or for None). A bad
    value raises ConfigError here, in the manager, rather than in every worker it forks."""
    read = getattr(loader, "limits", None)
    if not callable(read):
        return {}
    found = read(environment)
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise ConfigError(f"{source} limits(): expected a mapping, got {type(found).__name__}")
    return validate_limits(found, f"{source} limits()")


_NEVER = object()


class Throttled:
    """resque-pool's ``ConfigLoaders::Throttled``: call ``loader`` at most once per ``period``.

    - The first call always loads; later calls reload only when ``now > last_check + period``
      (strictly greater); otherwise the cached result is returned (not keyed by environment:
      the environment of a running pool never changes).
    - ``reset()`` forces the next call to reload and is forwarded to the wrapped loader when
      that loader has a ``reset``.
    - When the wrapped loader raises, ``last_check`` is not updated, so the next call retries.
    - Any other attribute is delegated to the wrapped loader (Ruby's SimpleDelegator).
    """

    def __init__(
        self,
        loader: Loader,
        period: float = 10,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._period = period
        self._time_source = time_source
        self._last_check: Any = _NEVER
        self._cache: Any = None
        # Decided once, as resque-pool's respond_to?(:reset!) at construction.
        self._delegate_reset = callable(getattr(loader, "reset", None))

    def __call__(self, environment: str | None) -> Any:
        now = self._time_source()
        if self._last_check is _NEVER or now > self._last_check + self._period:
            self._cache = self._loader(environment)
            self._last_check = now
        return self._cache

    def reset(self) -> None:
        self._last_check = _NEVER
        if self._delegate_reset:
            self._loader.reset()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never recurse while half-built (copy, pickle)
            raise AttributeError(name)
        return getattr(self._loader, name)

    def __str__(self) -> str:
        return str(self._loader)


@dataclass
class Source:
    """The chosen loader and how ``--test`` and the logs name it."""

    loader: Loader
    description: str
    # True for an explicitly named file: errors at start-up are fatal (exit status 2).
    strict: bool = False


def choose_source(config_path: str | None, pool: str) -> Source:
    """The order ``docs/pool.md`` documents: ``--config``/``RESQUE_POOL_CONFIG``, else the
    ``RESQUE_POOL_CONFIG_LOADER`` setting, else the database."""
    if config_path:
        return Source(FileLoader(config_path), config_path, strict=True)
    dotted = settings.RESQUE_POOL_CONFIG_LOADER
    if dotted:
        try:
            loader = import_string(dotted) if isinstance(dotted, str) else dotted
        except ImportError as error:
            raise ConfigError(f"RESQUE_POOL_CONFIG_LOADER {dotted!r}: {error}") from None
        if isinstance(loader, type):
            # A class is instantiated once, so that reset() and state live on one object.
            loader = loader()
        if not callable(loader):
            raise ConfigError(f"RESQUE_POOL_CONFIG_LOADER {dotted!r} is not callable")
        name = dotted if isinstance(dotted, str) else repr(dotted)
        return Source(loader, name)
    return Source(DatabaseLoader(pool), "database")
