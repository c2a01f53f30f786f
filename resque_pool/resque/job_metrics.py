"""Per job class counts and durations, written by workers inside the transactions they
already send per job and read by the Prometheus view (``resque_pool/metrics/``).

Keys of our own under the namespace (Ruby's Resque and resque-web never read them):

- ``<ns>:metrics:durations``: HASH, a histogram of the seconds from a worker taking a job
  to its ``done_working``, per job class: ``<class>|<le>`` holds the number of jobs whose
  duration fell in the bucket ending at ``le`` (not cumulative: the reader sums them) and
  ``<class>|sum_us`` the total in microseconds (integers: ``HINCRBY`` stays exact where
  ``HINCRBYFLOAT`` would drift);
- ``<ns>:metrics:jobs``: HASH, ``<class>|<event>`` counters: ``failed`` (a job that
  raised, as ``stat:failed`` counts it), ``retried`` and ``gave_up`` (a retry policy's
  outcome), ``interrupted`` (its process died under it or a stop interrupted it) and
  ``requeued`` (the loss policy pushed it back).

- ``<ns>:metrics:pool-jobs:<host:pid>``: HASH, the same events counted for the pool whose
  processes wrote them (``<event>`` → count): a pool's manager names itself with
  ``set_pool`` and its workers and their job children inherit the name with the fork.
  It expires with the pool's state (``RESQUE_POOL_STATE_TTL``, refreshed by each write
  and each publish of the state), so pools that are gone leave nothing behind.

- ``<ns>:metrics:queue-heads``: HASH, ``<queue>`` → ``"<sha1> <seconds>"``: the SHA-1 of
  the job at the queue's head and the Redis time a metrics scrape first saw it there
  (written by ``resque_pool/metrics/fleet.py``'s script, read there and by the autoscaler
  as a lower bound on the oldest job's wait).

``<class>`` is always a registered job name or ``other``: never a string taken from a
payload, so a hostile or mistyped payload cannot make Prometheus series without bound.
Both hashes stay small (registered classes times buckets) and never expire: they are
counters, which Prometheus expects to grow for ever.
"""

from __future__ import annotations

from typing import Any

from resque_pool.conf import settings
from resque_pool.resque.connection import key
from resque_pool.resque.registry import registry

DURATIONS = "metrics:durations"
JOBS = "metrics:jobs"
POOL_JOBS = "metrics:pool-jobs"
QUEUE_HEADS = "metrics:queue-heads"
OTHER = "other"
SEPARATOR = "|"
SUM_FIELD = "sum_us"
# Upper bounds of the duration buckets, in seconds: Prometheus's client defaults, then
# longer ones, since background jobs run for minutes more often than web requests do.
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
INF = "+Inf"
EVENTS = ("failed", "retried", "gave_up", "interrupted", "requeued")


def bound_text(bound: float) -> str:
    """The ``le`` label Prometheus's client writes for a bound (``0.005``, ``1.0``)."""
    return repr(float(bound))


BUCKET_FIELDS: tuple[str, ...] = (*(bound_text(b) for b in BUCKETS), INF)


def class_label(class_name: str | None) -> str:
    """The label value for a job class: its registered name, else ``other``."""
    if class_name and registry.get(class_name) is not None:
        return class_name
    return OTHER


def bucket_field(seconds: float) -> str:
    for bound, field in zip(BUCKETS, BUCKET_FIELDS, strict=False):
        if seconds <= bound:
            return field
    return INF


def bucket_command(label: str, seconds: float) -> tuple[Any, ...]:
    """The ``HINCRBY`` counting one job of class ``label`` (see ``class_label``) in the
    bucket of ``seconds``: one of a few per class, so a worker can pack it once."""
    return ("HINCRBY", key(DURATIONS), f"{label}{SEPARATOR}{bucket_field(seconds)}", 1)


def sum_command(label: str, seconds: float) -> tuple[Any, ...]:
    """The ``HINCRBY`` adding ``seconds`` (as whole microseconds) to the class's sum."""
    micros = max(0, int(seconds * 1_000_000))
    return ("HINCRBY", key(DURATIONS), f"{label}{SEPARATOR}{SUM_FIELD}", micros)


# The pool whose processes this one counts for (``host:pid`` of its manager), or None
# outside a pool (``manage.py resque_work``, a web process).
_pool: str | None = None


def set_pool(identifier: str | None) -> None:
    """Count this process's job events for the pool ``identifier`` too; called by the
    manager before it forks, so that its workers and their children inherit it."""
    global _pool
    _pool = identifier


def current_pool() -> str | None:
    return _pool


def pool_jobs_key(identifier: str) -> str:
    return key(POOL_JOBS, identifier)


def pool_jobs_ttl() -> int:
    return max(int(settings.RESQUE_POOL_STATE_TTL), 1)


def count_event(pipe: Any, class_name: str | None, event: str) -> None:
    """Queue ``HINCRBY <ns>:metrics:jobs <class>|<event> 1`` on ``pipe`` (inside the
    outcome's own transaction), and the same event for this process's pool."""
    pipe.hincrby(key(JOBS), event_field(class_name, event), 1)
    if _pool is not None:
        pool_key = pool_jobs_key(_pool)
        pipe.hincrby(pool_key, event, 1)
        pipe.expire(pool_key, pool_jobs_ttl())


def event_field(class_name: str | None, event: str) -> str:
    return f"{class_label(class_name)}{SEPARATOR}{event}"


def split_field(field: str) -> tuple[str, str] | None:
    """``"myapp.jobs.Archive|0.5"`` -> ``("myapp.jobs.Archive", "0.5")``; None for a field
    of another shape."""
    label, separator, rest = field.rpartition(SEPARATOR)
    return (label, rest) if separator and label else None


def histograms(raw: dict[str, str]) -> dict[str, tuple[list[tuple[str, int]], float]]:
    """The durations hash read back: per class, the cumulative ``(le, count)`` pairs (every
    bucket, ``+Inf`` last) and the sum in seconds. Fields of another shape are skipped."""
    counts: dict[str, dict[str, int]] = {}
    sums: dict[str, int] = {}
    for field, value in raw.items():
        parts = split_field(field)
        number = _to_int(value)
        if parts is None or number is None:
            continue
        label, rest = parts
        if rest == SUM_FIELD:
            sums[label] = number
        elif rest in BUCKET_FIELDS:
            counts.setdefault(label, {})[rest] = number
    result = {}
    for label in sorted(set(counts) | set(sums)):
        own = counts.get(label, {})
        running, cumulative = 0, []
        for field in BUCKET_FIELDS:
            running += own.get(field, 0)
            cumulative.append((field, running))
        result[label] = (cumulative, sums.get(label, 0) / 1_000_000)
    return result


def events(raw: dict[str, str]) -> dict[str, dict[str, int]]:
    """The jobs hash read back: ``{event: {class: count}}`` for the known events."""
    result: dict[str, dict[str, int]] = {event: {} for event in EVENTS}
    for field, value in raw.items():
        parts = split_field(field)
        number = _to_int(value)
        if parts is None or number is None or parts[1] not in result:
            continue
        result[parts[1]][parts[0]] = number
    return result


def _to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def head_seen_at(record: Any) -> int | None:
    """The Redis time (whole seconds) of a ``metrics:queue-heads`` record, ``None`` for
    no record or one of another shape."""
    if isinstance(record, bytes):
        record = record.decode("utf-8", "replace")
    if not isinstance(record, str):
        return None
    try:
        return int(record.split(" ", 1)[1])
    except (IndexError, ValueError):
        return None
