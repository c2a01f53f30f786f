"""Where a pool's configuration comes from: the loader contract and its three sources.

A loader is a ``ConfigLoader``: ``load(environment)`` returns the whole configuration for
one loader period (a ``PoolConfig``: the worker counts, each queue list's own limits and
the autoscaled lists' maximums, together), and ``reset()`` forgets whatever it caches (the
manager calls it on HUP). The manager asks once per ``RESQUE_POOL_LOADER_PERIOD`` and
validates what it gets with ``config.validate_counts``, ``validate_limits`` and
``validate_maximums``, so a custom loader cannot hand it ``" a, b"`` or ``True``; nothing
asks a loader when a worker is forked.

The three sources: a resque-pool YAML file (``FileLoader``), the ``WorkerCount`` rows
(``DatabaseLoader``) and a custom loader named by ``RESQUE_POOL_CONFIG_LOADER``. A custom
loader written for resque-pool's interface (a callable ``(environment) -> counts`` with an
optional ``reset()``, and ours with an optional ``limits(environment)``) keeps working: it
is wrapped in a ``CallableLoader``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from resque_pool.conf import settings
from resque_pool.config_error import ConfigError
from resque_pool.pool.config import (
    PoolConfig,
    check_bounds,
    validate_counts,
    validate_limits,
    validate_maximums,
)
from resque_pool.pool.config import load as read_file

__all__ = [
    "CallableLoader",
    "ConfigLoader",
    "DatabaseLoader",
    "FileLoader",
    "PoolConfig",
    "Source",
    "Throttled",
    "as_loader",
    "choose_source",
]


class ConfigLoader:
    """The contract of a configuration source (docs/pool.md, "A custom loader").

    Subclass it and implement ``load``; override ``reset`` when the loader caches. A loader
    may raise anything: the manager keeps the last good configuration and logs the error
    once until it changes."""

    def load(self, environment: str | None) -> PoolConfig:
        """The pool's whole configuration now, for ``environment`` (``None`` when the
        pool was started without one)."""
        raise NotImplementedError("a ConfigLoader must implement load(environment)")

    def reset(self) -> None:
        """Forget any cached configuration: the next ``load`` reads afresh (HUP)."""

    def __str__(self) -> str:
        return type(self).__name__


class CallableLoader(ConfigLoader):
    """A loader written for resque-pool's interface, as our contract: ``loader(environment)``
    gives the counts, its ``limits(environment)`` and ``maximums(environment)`` (when it
    has them) the limits and the autoscaled lists' maximums, and its ``reset()`` (when it
    has one) is called on HUP."""

    def __init__(self, loader: Callable[[str | None], Any]) -> None:
        self.loader = loader

    def load(self, environment: str | None) -> PoolConfig:
        counts = self.loader(environment)
        return PoolConfig(
            counts, self._optional("limits", environment), self._optional("maximums", environment)
        )

    def _optional(self, name: str, environment: str | None) -> Any:
        read = getattr(self.loader, name, None)
        value = read(environment) if callable(read) else None
        return {} if value is None else value

    def reset(self) -> None:
        reset = getattr(self.loader, "reset", None)
        if callable(reset):
            reset()

    def __str__(self) -> str:
        return str(self.loader)


def as_loader(candidate: Any) -> ConfigLoader:
    """``candidate`` under the contract: a loader with ``load()`` as it is, a callable
    wrapped in ``CallableLoader``; a ConfigError otherwise."""
    if callable(getattr(candidate, "load", None)):
        return candidate
    if callable(candidate):
        return CallableLoader(candidate)
    raise ConfigError(f"{candidate!r} is not a loader: it has no load() and is not callable")


class FileLoader(ConfigLoader):
    """A resque-pool YAML file, cached like resque-pool's: read on the first load and
    again only after ``reset()`` (HUP). A failed read is cached too, so a broken file is not
    re-read every second; the next HUP tries again.

    The failure is cached as its message and raised as a new exception each time: raising
    one exception object again appends to its ``__traceback__``, which grew once a second
    for as long as the broken file stayed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._config: PoolConfig | None = None
        self._error: str | None = None

    def load(self, environment: str | None) -> PoolConfig:
        if self._config is None and self._error is None:
            try:
                self._config = read_file(self.path, environment)
            except ConfigError as error:
                self._error = str(error)
        if self._error is not None:
            raise ConfigError(self._error)
        assert self._config is not None
        return self._config

    def reset(self) -> None:
        self._config = None
        self._error = None

    def __str__(self) -> str:
        return self.path


class DatabaseLoader(ConfigLoader):
    """The ``WorkerCount`` rows for this pool, counts, limits and maximums merged by
    environment and pool from one query per load."""

    def __init__(self, pool: str) -> None:
        self.pool = pool

    def load(self, environment: str | None) -> PoolConfig:
        # Imported on first use: settings may name Throttled (this module) before Django's
        # app registry is ready, and the models need it.
        from resque_pool.models import WorkerCount

        return PoolConfig(*WorkerCount.objects.config_for(environment, self.pool))

    def __str__(self) -> str:
        return "database"


_NEVER = object()


class Throttled(ConfigLoader):
    """resque-pool's ``ConfigLoaders::Throttled``: ask ``loader`` at most once per ``period``.

    - The first load always asks; later loads ask again only when
      ``now > last_check + period`` (strictly greater); otherwise the cached configuration
      is returned (not keyed by environment: the environment of a running pool never
      changes). Counts and limits are cached together.
    - ``reset()`` forces the next load to ask and is passed on to the wrapped loader.
    - When the wrapped loader raises, ``last_check`` is not updated, so the next load asks.
    - Calling it (``throttled(environment)``) gives the wrapped loader's counts, as Ruby's
      does; any other attribute is delegated to the wrapped loader (Ruby's
      SimpleDelegator).
    """

    def __init__(
        self,
        loader: Any,
        period: float = 10,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._wrapped = as_loader(loader)
        self._period = period
        self._time_source = time_source
        self._last_check: Any = _NEVER
        self._cache: Any = None

    def load(self, environment: str | None) -> PoolConfig:
        now = self._time_source()
        if self._last_check is _NEVER or now > self._last_check + self._period:
            self._cache = self._wrapped.load(environment)
            self._last_check = now
        return self._cache

    def __call__(self, environment: str | None) -> Any:
        return self.load(environment).counts

    def reset(self) -> None:
        self._last_check = _NEVER
        self._wrapped.reset()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never recurse while half-built (copy, pickle)
            raise AttributeError(name)
        return getattr(self._loader, name)

    def __str__(self) -> str:
        return str(self._loader)


@dataclass
class Source:
    """The chosen loader and how ``--test`` and the logs name it."""

    loader: ConfigLoader  # or a callable, taken as a CallableLoader
    description: str
    # True for an explicitly named file: errors at start-up are fatal (exit status 2).
    strict: bool = False

    def __post_init__(self) -> None:
        self.loader = as_loader(self.loader)  # resque-pool's callables too

    def load(self, environment: str | None) -> PoolConfig:
        """The loader's configuration as it gave it (``counts_of`` and ``limits_of`` check
        it); whatever the loader raises."""
        config = self.loader.load(environment)
        if not isinstance(config, PoolConfig):
            raise ConfigError(
                f"{self.description}: load() must return a PoolConfig, got {type(config).__name__}"
            )
        return config

    def counts_of(self, config: PoolConfig) -> dict[str, int]:
        """The counts, validated and normalised; ConfigError naming the source."""
        return validate_counts(config.counts, self.description)

    def limits_of(self, config: PoolConfig) -> dict[str, dict[str, int]]:
        """The limits, validated and normalised as a file's ``limits:`` are. Checked apart
        from the counts: bad limits must not stop a pool whose counts are good."""
        where = f"{self.description} limits"
        if not isinstance(config.limits, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(config.limits).__name__}")
        return validate_limits(config.limits, where)

    def maximums_of(self, config: PoolConfig, counts: Mapping[str, int]) -> dict[str, int]:
        """The autoscaled lists' maximums, validated against ``counts`` (their floors);
        checked apart from the counts as the limits are."""
        where = f"{self.description} maximums"
        maximums = validate_maximums(config.maximums, where)
        check_bounds(counts, maximums, where)
        return maximums


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
        name = dotted if isinstance(dotted, str) else repr(dotted)
        try:
            return Source(as_loader(loader), name)
        except ConfigError:
            raise ConfigError(f"RESQUE_POOL_CONFIG_LOADER {dotted!r} is not callable") from None
    return Source(DatabaseLoader(pool), "database")
