"""The metric families of one scrape, made from what ``fleet.read_fleet`` read.

A custom collector (prometheus-client's ``Collector`` protocol) rather than counters kept
in this process: every number lives in Redis, so any number of web processes serve the
same figures, and a restarted web process loses nothing. Names follow Prometheus's rules
(base units, ``_total`` on counters, added by the client); docs/metrics.md lists them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from resque_pool.metrics.fleet import Fleet, read_fleet
from resque_pool.resque import job_metrics, records, wire

# Per class counters of resque/job_metrics.py: (event, metric name, help).
_EVENT_METRICS = (
    ("failed", "resque_job_failures", "Jobs that raised, per job class (counted in stat:failed)."),
    ("retried", "resque_job_retries", "Failed jobs a retry policy scheduled again."),
    ("gave_up", "resque_job_give_ups", "Failed jobs whose retry policy gave up."),
    (
        "interrupted",
        "resque_job_interruptions",
        "Jobs whose process died under them (or a stop interrupted them), requeued or not.",
    ),
    ("requeued", "resque_job_requeues", "Interrupted jobs pushed back to their queue's head."),
)
# Counters a pool publishes in its state (pool/figures.py): (field, metric name, help).
_POOL_COUNTERS = (
    ("spawned", "resque_pool_worker_spawns", "Workers the pool forked (replacements too)."),
    ("recycled", "resque_pool_worker_recycles", "Workers that exited after max jobs/memory."),
    ("died", "resque_pool_worker_deaths", "Workers that exited without being asked to."),
    ("hung_killed", "resque_pool_worker_hang_kills", "Workers killed for making no progress."),
    ("backoffs", "resque_pool_backoffs", "Times a queue list's respawns were held back."),
)
# The job events counted per pool (resque/job_metrics.py's pool hash): (event, name, help).
_POOL_JOB_EVENTS = (
    ("failed", "resque_pool_job_failures", "Jobs that raised in the pool's processes."),
    ("retried", "resque_pool_job_retries", "Failed jobs a retry policy scheduled again."),
    ("gave_up", "resque_pool_job_give_ups", "Failed jobs whose retry policy gave up."),
    ("interrupted", "resque_pool_job_interruptions", "Jobs whose process died or was stopped."),
    ("requeued", "resque_pool_job_requeues", "Interrupted jobs pushed back to their queue."),
)
_POOL_LABELS = ["pool", "host", "appname"]


class ResqueCollector:
    """Reads Redis once per scrape (``collect``); registered without ``describe``, so
    registering it reads nothing."""

    def collect(self) -> Iterator[Metric]:
        fleet = read_fleet()
        yield from queue_metrics(fleet)
        yield from worker_metrics(fleet)
        yield from stat_metrics(fleet)
        yield from job_class_metrics(fleet)
        yield from scheduler_metrics(fleet)
        yield from pool_metrics(fleet)
        yield from autoscale_metrics(fleet)
        yield from pool_memory_metrics(fleet)


def queue_metrics(fleet: Fleet) -> Iterator[Metric]:
    length = GaugeMetricFamily(
        "resque_queue_jobs", "Jobs waiting in the queue (its LLEN).", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "resque_queue_oldest_job_age_seconds",
        "Seconds the job at the queue's head has been there, as the scrapes saw it "
        "(0 for an empty queue): a lower bound on the oldest job's wait.",
        labels=["queue"],
    )
    for name, (size, head_age) in sorted(fleet.queues.items()):
        length.add_metric([name], size)
        age.add_metric([name], max(head_age, 0))
    yield length
    yield age


def worker_metrics(fleet: Fleet) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "resque_workers",
        "Registered workers by host, queue list and state (busy: a job in flight).",
        labels=["host", "queues", "state"],
    )
    counts: Counter[tuple[str, str, str]] = Counter()
    for worker_id, busy in fleet.workers.items():
        parsed = records.parse_worker_id(worker_id)
        counts[(parsed.host, ",".join(parsed.queues), "busy" if busy else "idle")] += 1
    for (host, queues, state), count in sorted(counts.items()):
        family.add_metric([host, queues, state], count)
    yield family


def stat_metrics(fleet: Fleet) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "resque_jobs_processed", "Resque's stat:processed: jobs finished.", fleet.processed
    )
    yield CounterMetricFamily(
        "resque_jobs_failed", "Resque's stat:failed: jobs that raised.", fleet.failed
    )
    yield GaugeMetricFamily(
        "resque_failed_jobs", "Entries in the failed list (LLEN failed).", fleet.failed_list
    )


def job_class_metrics(fleet: Fleet) -> Iterator[Metric]:
    histogram = HistogramMetricFamily(
        "resque_job_duration_seconds",
        "Seconds from a worker taking a job to its done_working, per registered job class "
        "(others as 'other'); jobs that failed are not in it.",
        labels=["job_class"],
    )
    for label, (buckets, total) in job_metrics.histograms(fleet.durations).items():
        histogram.add_metric([label], buckets, total)
    yield histogram
    events = job_metrics.events(fleet.job_events)
    for event, name, text in _EVENT_METRICS:
        family = CounterMetricFamily(name, text, labels=["job_class"])
        for label, count in sorted(events[event].items()):
            family.add_metric([label], count)
        yield family


def scheduler_metrics(fleet: Fleet) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "resque_delayed_jobs", "Jobs in resque-scheduler's delayed queue.", fleet.delayed_jobs
    )
    yield GaugeMetricFamily(
        "resque_delayed_timestamps",
        "Distinct timestamps in the delayed queue (delayed_queue_schedule).",
        fleet.delayed_timestamps,
    )
    yield GaugeMetricFamily(
        "resque_scheduler_lag_seconds",
        "Seconds since the earliest delayed timestamp still waiting fell due (0: nothing "
        "overdue): how far the scheduler's mover is behind.",
        fleet.scheduler_lag,
    )


def pool_metrics(fleet: Fleet) -> Iterator[Metric]:
    running = GaugeMetricFamily(
        "resque_pool_workers", "Workers the pool runs now.", labels=_POOL_LABELS
    )
    desired = GaugeMetricFamily(
        "resque_pool_workers_desired", "Workers the pool's counts ask for.", labels=_POOL_LABELS
    )
    heartbeat = GaugeMetricFamily(
        "resque_pool_heartbeat_timestamp_seconds",
        "When the pool last published its state (Unix time).",
        labels=_POOL_LABELS,
    )
    memory = GaugeMetricFamily(
        "resque_pool_workers_resident_memory_bytes",
        "Resident memory of the pool's workers, summed.",
        labels=_POOL_LABELS,
    )
    counters = {
        field: CounterMetricFamily(name, text, labels=_POOL_LABELS)
        for field, name, text in _POOL_COUNTERS
    }
    job_events = {
        event: CounterMetricFamily(name, text, labels=_POOL_LABELS)
        for event, name, text in _POOL_JOB_EVENTS
    }
    for state in fleet.pools:
        labels = _pool_labels(state)
        workers = state.get("workers")
        counts = state.get("counts")
        running.add_metric(labels, _sum_lengths(workers))
        desired.add_metric(labels, _sum_values(_sized(counts, state.get("autoscale"))))
        moment = wire.parse_time(state.get("heartbeat") or "")
        if moment is not None:
            heartbeat.add_metric(labels, moment.timestamp())
        figures = state.get("figures") if isinstance(state.get("figures"), dict) else {}
        if _is_count(figures.get("rss_bytes")):
            memory.add_metric(labels, figures["rss_bytes"])
        for field, family in counters.items():
            if _is_count(figures.get(field)):
                family.add_metric(labels, figures[field])
        events = fleet.pool_jobs.get(str(state.get("id")), {})
        for event, family in job_events.items():
            count = _to_count(events.get(event, 0))
            family.add_metric(labels, count)
    yield from (running, desired, heartbeat, memory, *counters.values(), *job_events.values())


# Per autoscaled list of a pool (capacity/autoscale.py): (field, metric name, help).
_AUTOSCALE_GAUGES = (
    ("floor", "resque_pool_autoscale_floor_workers", "An autoscaled list's count: the fewest."),
    ("max", "resque_pool_autoscale_max_workers", "An autoscaled list's maximum."),
    ("target", "resque_pool_autoscale_target_workers", "Workers the autoscaler wants now."),
)
_AUTOSCALE_COUNTERS = (
    ("ups", "resque_pool_autoscale_ups", "Times the autoscaler grew the list."),
    ("downs", "resque_pool_autoscale_downs", "Times the autoscaler shrank the list."),
)


def autoscale_metrics(fleet: Fleet) -> Iterator[Metric]:
    labels = [*_POOL_LABELS, "queues"]
    gauges = {
        field: GaugeMetricFamily(name, text, labels=labels)
        for field, name, text in _AUTOSCALE_GAUGES
    }
    counters = {
        field: CounterMetricFamily(name, text, labels=labels)
        for field, name, text in _AUTOSCALE_COUNTERS
    }
    changed = GaugeMetricFamily(
        "resque_pool_autoscale_last_change_timestamp_seconds",
        "When the autoscaler last moved the list's target (Unix time); the reason is in the "
        "admin and the pool's log.",
        labels=labels,
    )
    for state in fleet.pools:
        scaled = state.get("autoscale")
        if not isinstance(scaled, dict):
            continue
        pool = _pool_labels(state)
        for queues, entry in sorted(scaled.items()):
            if not isinstance(entry, dict):
                continue
            for field, family in (*gauges.items(), *counters.items()):
                if _is_count(entry.get(field)):
                    family.add_metric([*pool, queues], entry[field])
            decision = entry.get("decision")
            moment = (
                wire.parse_time(str(decision.get("at"))) if isinstance(decision, dict) else None
            )
            if moment is not None:
                changed.add_metric([*pool, queues], moment.timestamp())
    yield from (*gauges.values(), *counters.values(), changed)


def _sized(counts: Any, scaled: Any) -> Any:
    """A pool's counts with each autoscaled list's target in place of its count."""
    if not isinstance(counts, dict) or not isinstance(scaled, dict):
        return counts
    return {
        queues: scaled[queues]["target"]
        if isinstance(scaled.get(queues), dict) and _is_count(scaled[queues].get("target"))
        else count
        for queues, count in counts.items()
    }


# The memory budget a pool publishes (capacity/memory.py): (field, metric name, help).
_POOL_MEMORY = (
    (
        "budget_bytes",
        "resque_pool_memory_budget_bytes",
        "Memory the pool's process tree may use (RESQUE_POOL_MEMORY_BUDGET_MB or the "
        "container's limit less 10%); absent without a budget.",
    ),
    (
        "used_bytes",
        "resque_pool_memory_used_bytes",
        "Summed PSS of the pool's process tree (manager, workers, job children).",
    ),
    ("fit", "resque_pool_memory_workers_fit", "More workers the memory budget has room for."),
    (
        "refused",
        "resque_pool_memory_workers_refused",
        "Workers the pool did not fork at its last decision for lack of memory budget.",
    ),
)


def pool_memory_metrics(fleet: Fleet) -> Iterator[Metric]:
    families = {
        field: GaugeMetricFamily(name, text, labels=_POOL_LABELS)
        for field, name, text in _POOL_MEMORY
    }
    for state in fleet.pools:
        found = state.get("memory")
        if not isinstance(found, dict):
            continue
        labels = _pool_labels(state)
        for field, family in families.items():
            if _is_count(found.get(field)):
                family.add_metric(labels, found[field])
    yield from families.values()


def _pool_labels(state: dict[str, Any]) -> list[str]:
    """A pool's label values, in ``_POOL_LABELS``'s order."""
    return [str(state.get("id")), str(state.get("host")), str(state.get("appname") or "")]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _to_count(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _sum_lengths(value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    return sum(len(pids) for pids in value.values() if isinstance(pids, list))


def _sum_values(value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    return sum(count for count in value.values() if _is_count(count))
