"""A pool's configuration: worker counts and limits per queue list, validated, and loaded
from a resque-pool YAML file (read and parsed by ``yaml_file.py``).

The merge is resque-pool's ``FileOrHashLoader#apply_environment``: root keys are defaults,
the section named after the environment overrides them key by key, and then every
hash-valued key (the chosen section, every other section, any nested mapping) is dropped.

Limits per queue list live under a reserved ``limits:`` mapping and the autoscaled lists'
maximums under ``autoscale:``, at the root and inside an environment section; Ruby's
resque-pool drops those mappings like any other hash.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from resque_pool.conf import settings
from resque_pool.config_error import ConfigError, clip, quote
from resque_pool.resque.queue_lists import normalize_queue_list


@dataclass(frozen=True)
class PoolConfig:
    """What a pool runs for one loader period: ``{"q1,q2": count}``; per queue list, its
    own limits (``{"q1,q2": {"job_timeout": 300}}``; a list left out, or a limit left out,
    uses the setting); and the lists that autoscale, with the most workers each may grow
    to (``{"q1,q2": 8}``; its count is then the floor, docs/capacity.md)."""

    counts: Mapping[str, int]
    limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    maximums: Mapping[str, int] = field(default_factory=dict)


def _queue_key(key: Any, source: str) -> str:
    if isinstance(key, bool) or key is None:
        raise ConfigError(f"{source}: {quote(key)} is not a queue list")
    try:
        return normalize_queue_list(str(key))
    except ValidationError as error:
        raise ConfigError(
            f"{source}: queue list {quote(str(key))}: {clip(error.messages[0])}"
        ) from None


def validate_counts(mapping: Any, source: str) -> dict[str, int]:
    """``{"foo, bar": 2}`` -> ``{"foo,bar": 2}``; ConfigError for anything else.

    Keys must be queue lists (normalised), values integers >= 0 (a boolean is not a count),
    adding up to at most ``RESQUE_POOL_MAX_WORKERS``. Two keys that normalise to the same
    list are refused: which one wins would be a guess.
    """
    return check_ceiling(_validate_entries(mapping, source), source)


def max_workers() -> int:
    return int(settings.RESQUE_POOL_MAX_WORKERS)


def check_ceiling(counts: dict[str, int], source: str) -> dict[str, int]:
    """Refuse counts adding up to more than ``RESQUE_POOL_MAX_WORKERS``: a typo such as
    ``foo: 99999999999`` must not fork until the kernel refuses."""
    total, ceiling = sum(counts.values()), max_workers()
    if total > ceiling:
        raise ConfigError(
            f"{source}: {total} workers in total, more than RESQUE_POOL_MAX_WORKERS ({ceiling})"
        )
    return counts


def _validate_entries(mapping: Any, source: str) -> dict[str, int]:
    return _integers_per_list(mapping, source, "count", 0, None)


def _integers_per_list(
    mapping: Any, source: str, what: str, low: int, high: int | None
) -> dict[str, int]:
    """``{"a, b": 2}`` -> ``{"a,b": 2}``: queue lists (normalised, each given once) to
    integers from ``low`` to ``high`` (None: no bound); ``what`` names a value in the
    messages. Counts and maximums alike."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of queue lists to {what}s, got {type(mapping).__name__}"
        )
    found: dict[str, int] = {}
    for raw_key, value in mapping.items():
        queues = _queue_key(raw_key, source)
        if not _integer_in(value, low, high):
            bounds = f">= {low}" if high is None else f"from {low} to {high}"
            raise ConfigError(
                f"{source}: {what} for {quote(queues)} must be an integer {bounds}, "
                f"got {quote(value)}"
            )
        if queues in found:
            raise ConfigError(f"{source}: queue list {quote(queues)} is given twice")
        found[queues] = value
    return found


def _integer_in(value: Any, low: int, high: int | None) -> bool:
    """An integer (a boolean is not one) from ``low`` to ``high`` (None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return low <= value and (high is None or value <= high)


def merge_environment(config: Any, environment: str | None, source: str) -> dict[str, int]:
    """resque-pool's merge: root defaults, the environment's section over them, sections
    and other mappings dropped; then validated.

    Keys are normalised before merging so that ``"foo, bar"`` in a section overrides
    ``"foo,bar"`` at the root, as a reader would expect.
    """
    if config is None:
        raise ConfigError(f"{source}: the file is empty (write {{}} for a pool with no workers)")
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of queue lists to counts, got {type(config).__name__}"
        )
    merged = _validate_entries(
        {k: v for k, v in config.items() if not isinstance(v, Mapping)}, source
    )
    section = config.get(environment) if environment else None
    if isinstance(section, Mapping):
        scalars = {k: v for k, v in section.items() if not isinstance(v, Mapping)}
        merged.update(_validate_entries(scalars, f"{source} [{environment}]"))
    # The ceiling is for what the pool runs: the merge, not the root or a section alone.
    return check_ceiling(merged, source)


# The reserved key of a file's limits per queue list. Ruby's resque-pool sees it as one more
# environment section (a hash) and drops it, so the file stays valid for Ruby.
LIMITS_KEY = "limits"
LIMIT_NAMES = ("job_timeout", "max_jobs", "max_memory_mb")
# The range of the WorkerCount limit columns: a file and an admin row accept the same values.
MAX_LIMIT = 2_147_483_647


def validate_limits(mapping: Any, source: str) -> dict[str, dict[str, int]]:
    """``{"a, b": {"max_jobs": 5}}`` -> ``{"a,b": {"max_jobs": 5}}``; ConfigError otherwise.
    For a file's ``limits:`` mappings and a custom loader's ``limits()`` alike."""
    limits: dict[str, dict[str, int]] = {}
    for raw_key, value in mapping.items():
        queues = _queue_key(raw_key, source)
        if queues in limits:
            raise ConfigError(f"{source}: queue list {quote(queues)} is given twice")
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{source}: limits for {quote(queues)} must be a mapping of "
                f"{', '.join(LIMIT_NAMES)}, got {quote(value)}"
            )
        own: dict[str, int] = {}
        for name, number in value.items():
            if name not in LIMIT_NAMES:
                raise ConfigError(
                    f"{source}: unknown limit {quote(name)} for {quote(queues)} "
                    f"(known: {', '.join(LIMIT_NAMES)})"
                )
            if not _integer_in(number, 1, MAX_LIMIT):
                raise ConfigError(
                    f"{source}: {name} for {quote(queues)} must be an integer from 1 to "
                    f"{MAX_LIMIT}, got {quote(number)}"
                )
            own[name] = number
        limits[queues] = own
    return limits


def _sections(
    config: Any, environment: str | None, reserved: str, source: str
) -> list[tuple[Mapping, str]]:
    """The mappings under a reserved key (``limits:``, ``autoscale:``) that apply to
    ``environment``, each with where it is for messages: the root's, then the section's."""
    if not isinstance(config, Mapping):
        return []
    found = []
    root = config.get(reserved)
    if isinstance(root, Mapping):
        if environment == reserved:
            raise ConfigError(
                f"{source}: the environment cannot be named {reserved!r} in a file with "
                f"a {reserved}: section"
            )
        found.append((root, f"{source} [{reserved}]"))
    section = config.get(environment) if environment else None
    if isinstance(section, Mapping) and isinstance(section.get(reserved), Mapping):
        found.append((section[reserved], f"{source} [{environment}.{reserved}]"))
    return found


def merge_limits(config: Any, environment: str | None, source: str) -> dict[str, dict[str, int]]:
    """The file's limits per queue list for ``environment``: the root ``limits:`` mapping,
    then the section's ``limits:`` over it per limit (as ``WorkerCount`` rows merge). Lists
    without a count are allowed (a list may be counted in one environment only)."""
    merged: dict[str, dict[str, int]] = {}
    for mapping, where in _sections(config, environment, LIMITS_KEY, source):
        for queues, own in validate_limits(mapping, where).items():
            merged.setdefault(queues, {}).update(own)
    return merged


# The reserved key of a file's autoscaled lists, ``{"q1,q2": maximum}``; Ruby's resque-pool
# drops it as it drops ``limits:``.
AUTOSCALE_KEY = "autoscale"


def validate_maximums(mapping: Any, source: str) -> dict[str, int]:
    """``{"a, b": 8}`` -> ``{"a,b": 8}``: the most workers each autoscaled list may grow
    to (its count is the floor). For a file's ``autoscale:`` mappings, a ``WorkerCount``
    row's ``max_count`` and a custom loader's ``maximums()`` alike."""
    return _integers_per_list(mapping, source, "maximum", 1, MAX_LIMIT)


def merge_maximums(config: Any, environment: str | None, source: str) -> dict[str, int]:
    """The file's autoscaled lists for ``environment``: the root ``autoscale:`` mapping,
    then the section's over it per list."""
    merged: dict[str, int] = {}
    for mapping, where in _sections(config, environment, AUTOSCALE_KEY, source):
        merged.update(validate_maximums(mapping, where))
    return merged


def check_bounds(counts: Mapping[str, int], maximums: Mapping[str, int], source: str) -> None:
    """Each maximum at least its list's count (the floor), and the pool's most, every
    autoscaled list at its maximum, within ``RESQUE_POOL_MAX_WORKERS``. A maximum for a
    list with no count here is allowed and unused, as limits are."""
    for queues, maximum in maximums.items():
        floor = counts.get(queues)
        if floor is not None and maximum < floor:
            raise ConfigError(
                f"{source}: maximum for {quote(queues)} ({maximum}) is below its count ({floor})"
            )
    most = sum(max(count, maximums.get(queues, 0)) for queues, count in counts.items())
    ceiling = max_workers()
    if most > ceiling:
        raise ConfigError(
            f"{source}: up to {most} workers when autoscaled, more than "
            f"RESQUE_POOL_MAX_WORKERS ({ceiling})"
        )


def load(
    path: str, environment: str | None, environ: Mapping[str, str] | None = None
) -> PoolConfig:
    """Read, interpolate, parse, merge and validate one file: its counts, its limits and
    its autoscaled lists' maximums."""
    # Imported here: PyYAML's import takes about 13 ms (most of it compiling its reader's
    # character class), which a pool that reads WorkerCount rows need not pay at start-up.
    from resque_pool.yaml_file import interpolate, parse_yaml, read_config

    config = parse_yaml(interpolate(read_config(path), environ, path), path)
    counts = merge_environment(config, environment, path)
    maximums = merge_maximums(config, environment, path)
    check_bounds(counts, maximums, path)
    return PoolConfig(counts, merge_limits(config, environment, path), maximums)


def load_file(path: str, environment: str | None, environ: Mapping[str, str] | None = None):
    """The counts of one file (see ``load``)."""
    return load(path, environment, environ).counts


DEFAULT_FILES = ("resque-pool.yml", "config/resque-pool.yml")


def default_file_present(cwd: str = ".") -> str | None:
    """resque-pool's implicit lookup; we only warn about such a file (see docs/pool.md)."""
    for name in DEFAULT_FILES:
        if os.path.isfile(os.path.join(cwd, name)):
            return name
    return None
