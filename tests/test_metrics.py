"""The Prometheus view (resque_pool.metrics): who may read it, and that what it says is
what Redis holds, parsed back with prometheus-client's own text parser. Workers run in
this process (FORK_PER_JOB off); the real Prometheus scrape is test_metrics_prometheus.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from resque_pool import enqueue, job
from resque_pool.errors import DirtyExit
from resque_pool.pool import state as pool_state
from resque_pool.pool.figures import PoolFigures
from resque_pool.resque import delayed, in_flight, job_metrics, reserve
from resque_pool.resque.connection import get_redis, key
from resque_pool.scheduler import Retry
from resque_pool.worker.loop import Worker
from tests.support.admin import make_user
from tests.support.common import ROOT, wait_until

TOKEN = "s3cret-metrics-token"


@job(queue="mt", name="MetricsTestOk")
def ok(token):
    return token


@job(queue="mt", name="MetricsTestBoom")
def boom(token):
    raise ValueError(f"boom {token}")


@job(queue="mt", name="MetricsTestRetry", retry=Retry(limit=1, delay=0))
def retried(token):
    raise ValueError(f"again {token}")


@pytest.fixture
def scrape(settings):
    settings.RESQUE_METRICS_TOKEN = TOKEN

    def read() -> dict[str, list]:
        response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        samples: dict[str, list] = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    return read


def value(samples, name, **labels):
    found = [v for sample_labels, v in samples.get(name, []) if sample_labels == labels]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


# -- who may read it ----------------------------------------------------------------------


def test_no_credentials_is_401_with_a_bearer_challenge(settings):
    settings.RESQUE_METRICS_TOKEN = TOKEN
    response = Client().get("/metrics/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"resque_" not in response.content


@pytest.mark.parametrize("offered", ["wrong", TOKEN + "x", TOKEN[:-1], ""])
def test_a_wrong_token_is_403(settings, offered):
    settings.RESQUE_METRICS_TOKEN = TOKEN
    response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {offered}")
    assert response.status_code == 403


def test_no_token_configured_accepts_no_token(settings):
    settings.RESQUE_METRICS_TOKEN = None
    response = Client().get("/metrics/", HTTP_AUTHORIZATION="Bearer None")
    assert response.status_code == 403


@pytest.mark.django_db
def test_the_dashboards_view_permission_reads_it_and_other_staff_do_not(settings):
    settings.RESQUE_METRICS_TOKEN = None
    viewer, other = Client(), Client()
    viewer.force_login(make_user("viewer", "view_dashboard"))
    other.force_login(make_user("other", "view_workercount"))
    assert viewer.get("/metrics/").status_code == 200
    assert other.get("/metrics/").status_code == 403


def test_only_safe_methods(settings):
    settings.RESQUE_METRICS_TOKEN = TOKEN
    response = Client().post("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


def test_openmetrics_when_the_scraper_asks_for_it(settings, resque):
    settings.RESQUE_METRICS_TOKEN = TOKEN
    response = Client().get(
        "/metrics/",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


# -- what it says -------------------------------------------------------------------------


def test_queue_lengths_equal_llen_and_stats_match_resques(scrape, resque):
    for n in range(3):
        enqueue("MetricsTestOk", n)
    resque.client.sadd(resque.key("queues"), "empty")
    resque.client.set(resque.key("stat", "processed"), 41)
    resque.client.set(resque.key("stat", "failed"), 7)
    samples = scrape()
    assert value(samples, "resque_queue_jobs", queue="mt") == 3
    assert value(samples, "resque_queue_jobs", queue="empty") == 0
    assert value(samples, "resque_jobs_processed_total") == 41
    assert value(samples, "resque_jobs_failed_total") == 7


def test_a_worker_records_durations_and_failures_per_registered_class(scrape, resque):
    enqueue("MetricsTestOk", 1)
    enqueue("MetricsTestOk", 2)
    enqueue("MetricsTestBoom", 3)
    # A class nobody registered, with a name that would make a series of its own.
    resque.client.rpush(resque.key("queue", "mt"), '{"class":"Evil\\"}{x","args":[]}')
    Worker("mt", interval=0, fork_per_job=False).work()

    samples = scrape()
    assert value(samples, "resque_job_duration_seconds_count", job_class="MetricsTestOk") == 2
    inf = value(samples, "resque_job_duration_seconds_bucket", job_class="MetricsTestOk", le="+Inf")
    assert inf == 2
    assert 0 <= value(samples, "resque_job_duration_seconds_sum", job_class="MetricsTestOk") < 5
    assert value(samples, "resque_job_failures_total", job_class="MetricsTestBoom") == 1
    assert value(samples, "resque_job_failures_total", job_class="other") == 1
    assert value(samples, "resque_jobs_failed_total") == 2
    assert value(samples, "resque_failed_jobs") == 2
    every_label = {v for rows in samples.values() for labels, _ in rows for v in labels.values()}
    assert not any("Evil" in label for label in every_label)


def test_a_retry_policys_retries_and_give_ups_are_counted_per_class(scrape, resque):
    enqueue("MetricsTestRetry", 1)
    Worker("mt", interval=0, fork_per_job=False).work()  # fails, retried at once, gives up
    samples = scrape()
    assert value(samples, "resque_job_failures_total", job_class="MetricsTestRetry") == 2
    assert value(samples, "resque_job_retries_total", job_class="MetricsTestRetry") == 1
    assert value(samples, "resque_job_give_ups_total", job_class="MetricsTestRetry") == 1
    assert value(samples, "resque_failed_jobs") == 1  # only the give-up's entry


def test_the_duration_rides_in_done_workings_write(resque):
    """No round trip of its own: an in-process job still costs its worker two writes
    (the reserve script, done_working), as Redis counts the reads it made."""
    if "total_reads_processed" not in resque.client.info("stats"):
        pytest.skip("a Redis without total_reads_processed (fakeredis)")
    jobs = 200
    for n in range(jobs):
        enqueue("MetricsTestOk", n)
    before = resque.client.info("stats")["total_reads_processed"]
    Worker("mt", interval=0, fork_per_job=False).work()
    reads = resque.client.info("stats")["total_reads_processed"] - before
    assert reads / jobs < 2.2, reads  # two per job, and the worker's start and stop
    durations = resque.client.hgetall(resque.key(job_metrics.DURATIONS))
    assert sum(int(v) for k, v in durations.items() if not k.endswith("sum_us")) == jobs


def test_durations_can_be_left_out(settings, resque):
    settings.RESQUE_METRICS_JOB_DURATIONS = False
    enqueue("MetricsTestOk", 1)
    Worker("mt", interval=0, fork_per_job=False).work()
    assert resque.client.get(resque.key("stat", "processed")) == "1"
    assert not resque.client.exists(resque.key(job_metrics.DURATIONS))


def test_the_histogram_is_cumulative_over_the_buckets(scrape, resque):
    hash_key = resque.key(job_metrics.DURATIONS)
    resque.client.hset(
        hash_key,
        mapping={"MetricsTestOk|0.005": 3, "MetricsTestOk|1.0": 2, "MetricsTestOk|+Inf": 1},
    )
    resque.client.hset(hash_key, "MetricsTestOk|sum_us", 4_500_000)
    resque.client.hset(hash_key, "junk", "x")
    samples = scrape()
    buckets = {
        labels["le"]: v
        for labels, v in samples["resque_job_duration_seconds_bucket"]
        if labels["job_class"] == "MetricsTestOk"
    }
    assert buckets["0.005"] == 3 and buckets["0.5"] == 3 and buckets["1.0"] == 5
    assert buckets["3600.0"] == 5 and buckets["+Inf"] == 6
    assert value(samples, "resque_job_duration_seconds_sum", job_class="MetricsTestOk") == 4.5


def test_a_requeued_interruption_is_counted_and_the_bytes_go_back_untouched(
    settings, scrape, resque
):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    raw = '{"class":"MetricsTestOk","args":[1.0e0, "x"]}'
    resque.client.rpush(resque.key("queue", "mt"), raw)
    worker_id = "host:1:mt"
    reservation = reserve.reserve(worker_id, ["mt"])
    assert reservation is not None
    record = reserve.read_in_flight(worker_id)
    assert in_flight.job_lost(worker_id, record, RuntimeError("killed")) == "requeued"
    assert resque.client.lrange(resque.key("queue", "mt"), 0, -1) == [raw]
    samples = scrape()
    assert value(samples, "resque_job_interruptions_total", job_class="MetricsTestOk") == 1
    assert value(samples, "resque_job_requeues_total", job_class="MetricsTestOk") == 1


def test_a_pools_processes_count_its_requeues_for_it(settings, resque):
    """What a manager's set_pool gives the processes it forks, shown in this process."""
    settings.RESQUE_REQUEUE_DIRTY_JOBS = True
    enqueue("MetricsTestOk", 1)
    worker_id = "host:3:mt"
    assert reserve.reserve(worker_id, ["mt"]) is not None
    record = reserve.read_in_flight(worker_id)
    job_metrics.set_pool("web1:77")
    try:
        assert in_flight.job_lost(worker_id, record, RuntimeError("killed")) == "requeued"
    finally:
        job_metrics.set_pool(None)
    pool_key = resque.key("metrics", "pool-jobs", "web1:77")
    assert resque.client.hgetall(pool_key) == {"interrupted": "1", "requeued": "1"}
    assert 0 < resque.client.ttl(pool_key) <= 30  # RESQUE_POOL_STATE_TTL, as the state


def test_a_queue_key_of_another_type_reads_as_empty(scrape, resque):
    enqueue("MetricsTestOk", 1)
    resque.client.sadd(resque.key("queues"), "odd")
    resque.client.set(resque.key("queue", "odd"), "not a list")
    samples = scrape()
    assert value(samples, "resque_queue_jobs", queue="odd") == 0
    assert value(samples, "resque_queue_jobs", queue="mt") == 1


def test_an_interruption_without_requeueing_is_counted_once_with_its_failure(
    settings, scrape, resque
):
    settings.RESQUE_REQUEUE_DIRTY_JOBS = False
    enqueue("MetricsTestOk", 1)
    worker_id = "host:2:mt"
    assert reserve.reserve(worker_id, ["mt"]) is not None
    record = reserve.read_in_flight(worker_id)
    assert in_flight.job_lost(worker_id, record, DirtyExit("killed")) == "failed"
    samples = scrape()
    assert value(samples, "resque_job_interruptions_total", job_class="MetricsTestOk") == 1
    assert "resque_job_requeues_total" not in samples  # nothing was requeued
    assert value(samples, "resque_failed_jobs") == 1
    assert value(samples, "resque_jobs_failed_total") == 0  # a DirtyExit, as in Resque


def test_workers_busy_and_idle_per_host_and_queue_list(scrape, resque):
    client = resque.client
    client.sadd(resque.key("workers"), "web1:10:high,low", "web1:11:high,low", "web2:12:mail")
    client.set(resque.key("worker", "web1:10:high,low"), '{"queue":"high","payload":{}}')
    samples = scrape()
    assert value(samples, "resque_workers", host="web1", queues="high,low", state="busy") == 1
    assert value(samples, "resque_workers", host="web1", queues="high,low", state="idle") == 1
    assert value(samples, "resque_workers", host="web2", queues="mail", state="idle") == 1


def test_the_oldest_jobs_age_follows_the_queues_head_and_leaves_its_bytes(scrape, resque):
    queue_key = resque.key("queue", "mt")
    enqueue("MetricsTestOk", "first")
    enqueue("MetricsTestOk", "second")
    before = resque.client.lrange(queue_key, 0, -1)
    assert value(scrape(), "resque_queue_oldest_job_age_seconds", queue="mt") == 0
    # The head was first seen 100 s ago (as a scrape then would have written it).
    heads = resque.key("metrics", "queue-heads")
    sha, seen = resque.client.hget(heads, "mt").split(" ")
    resque.client.hset(heads, "mt", f"{sha} {int(seen) - 100}")
    assert 100 <= value(scrape(), "resque_queue_oldest_job_age_seconds", queue="mt") < 110
    assert resque.client.lrange(queue_key, 0, -1) == before  # nothing added to payloads
    resque.client.lpop(queue_key)  # a new head: its time starts now
    assert value(scrape(), "resque_queue_oldest_job_age_seconds", queue="mt") == 0
    resque.client.delete(queue_key)
    assert value(scrape(), "resque_queue_oldest_job_age_seconds", queue="mt") == 0
    assert not resque.client.hexists(heads, "mt")
    resque.client.srem(resque.key("queues"), "mt")
    enqueue("MetricsTestOk", "third", queue="other-q")
    scrape()
    assert resque.client.hkeys(heads) == ["other-q"]


def test_delayed_jobs_and_the_schedulers_lag(scrape, resque):
    now = int(time.time())
    delayed.delayed_push(now - 120, delayed.item_for("MetricsTestOk", [1], "mt"))
    delayed.delayed_push(now - 120, delayed.item_for("MetricsTestOk", [2], "mt"))
    delayed.delayed_push(now + 3600, delayed.item_for("MetricsTestOk", [3], "mt"))
    samples = scrape()
    assert value(samples, "resque_delayed_jobs") == 3
    assert value(samples, "resque_delayed_timestamps") == 2
    assert 119 <= value(samples, "resque_scheduler_lag_seconds") < 130


def test_pool_figures_come_from_the_published_state(scrape, resque):
    pool_state.publish(
        {
            "id": "web1:4242",
            "host": "web1",
            "pid": 4242,
            "appname": "shop",
            "counts": {"high,low": 2, "mail": 1},
            "workers": {"high,low": [1, 2], "mail": []},
            "figures": {"spawned": 5, "recycled": 2, "died": 1, "backoffs": 0, "rss_bytes": 99},
        }
    )
    resque.client.set(resque.key("pool", "bad:1"), "not json")
    resque.client.sadd(resque.key("pools"), "bad:1")
    samples = scrape()
    labels = {"pool": "web1:4242", "host": "web1", "appname": "shop"}
    assert value(samples, "resque_pool_workers", **labels) == 2
    assert value(samples, "resque_pool_workers_desired", **labels) == 3
    assert value(samples, "resque_pool_worker_recycles_total", **labels) == 2
    assert value(samples, "resque_pool_worker_spawns_total", **labels) == 5
    assert value(samples, "resque_pool_worker_deaths_total", **labels) == 1
    assert value(samples, "resque_pool_workers_resident_memory_bytes", **labels) == 99
    heartbeat = value(samples, "resque_pool_heartbeat_timestamp_seconds", **labels)
    assert abs(heartbeat - time.time()) < 5


def test_redis_down_is_a_503_with_one_line(settings):
    settings.RESQUE_METRICS_TOKEN = TOKEN
    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503
    assert response.content.decode().count("\n") == 1


# -- without prometheus-client ------------------------------------------------------------

WITHOUT_LIBRARY = """
import sys
sys.modules["prometheus_client"] = None  # as if the [metrics] extra were not installed
import django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
settings.RESQUE_METRICS_TOKEN = "t"
response = Client().get("/metrics/", HTTP_AUTHORIZATION="Bearer t")
print(response.status_code, response.content.decode().strip())
from django.core.management import call_command
call_command("check")
"""


def test_without_prometheus_client_the_view_and_check_say_what_to_install(resque):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_LIBRARY],
        env=resque.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.startswith("500 resque_pool.metrics needs prometheus-client")
    assert "django-resque-pool[metrics]" in result.stdout
    assert result.returncode != 0
    assert "resque_pool.E011" in result.stderr


def test_pool_state_figures_are_json(resque):
    """What the manager publishes: the figures ride in the state's JSON (pool/figures.py)."""
    figures = PoolFigures(spawned=2)
    snapshot = figures.snapshot([])
    assert json.loads(json.dumps(snapshot))["spawned"] == 2
    assert snapshot.get("rss_bytes", 0) == 0


# -- a real pool --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_pools_recycles_deaths_backoff_and_job_durations(start_pool, tmp_path, scrape):
    """Workers of ``crash`` die at once (tests/support/processes.py); ``demo``'s recycle
    after each job: the pool's counters, the forked jobs' durations and a retried job's
    attempts (counted by the workers for their pool) reach the view."""
    config = tmp_path / "pool.yml"
    config.write_text("demo: 1\ncrash: 1\n")
    pool = start_pool("-c", str(config), settings={"RESQUE_WORKER_MAX_JOBS": 1})
    client = get_redis()
    for token in "abc":
        client.sadd(key("queues"), "demo")
        client.rpush(key("queue", "demo"), json.dumps({"class": "SlowRecord", "args": [token, 0]}))
    # Fails at once each time, retried at once three times, then given up.
    client.rpush(key("queue", "demo"), json.dumps({"class": "RetryChaos", "args": ["r", 0]}))

    def figures() -> dict:
        return pool.state().get("figures") or {}

    wait_until(
        lambda: figures().get("recycled", 0) >= 7 and figures().get("backoffs", 0) >= 1,
        timeout=90,
        message=lambda: f"seven recycles and a backoff ({figures()}; {pool.log()[-3000:]})",
    )
    samples = scrape()
    state = pool.state()
    labels = {"pool": state["id"], "host": state["host"], "appname": state["appname"] or ""}
    assert value(samples, "resque_pool_worker_recycles_total", **labels) >= 7
    assert value(samples, "resque_pool_worker_deaths_total", **labels) >= 2
    assert value(samples, "resque_pool_backoffs_total", **labels) >= 1
    assert value(samples, "resque_pool_worker_spawns_total", **labels) >= 5
    assert value(samples, "resque_pool_workers_resident_memory_bytes", **labels) > 1_000_000
    assert value(samples, "resque_job_duration_seconds_count", job_class="SlowRecord") == 3
    assert value(samples, "resque_jobs_processed_total") == 7
    assert value(samples, "resque_pool_job_failures_total", **labels) == 4
    assert value(samples, "resque_pool_job_retries_total", **labels) == 3
    assert value(samples, "resque_pool_job_give_ups_total", **labels) == 1
    assert value(samples, "resque_pool_job_requeues_total", **labels) == 0
    assert value(samples, "resque_job_retries_total", job_class="RetryChaos") == 3
    assert 0 < client.ttl(key("metrics", "pool-jobs", state["id"])) <= 60  # goes with the pool


def test_an_autoscaled_lists_bounds_target_and_changes_come_from_the_state(scrape, resque):
    pool_state.publish(
        {
            "id": "web2:77",
            "host": "web2",
            "pid": 77,
            "appname": "shop",
            "counts": {"high,low": 1, "mail": 2},
            "workers": {"high,low": [1, 2, 3, 4], "mail": [5, 6]},
            "autoscale": {
                "high,low": {
                    "floor": 1,
                    "max": 8,
                    "target": 4,
                    "ups": 2,
                    "downs": 1,
                    "decision": {
                        "at": "2026-12-07T17:32:03+00:00",
                        "from": 8,
                        "to": 4,
                        "reason": "needed at most 4 for 30s (4 busy, 0 waiting)",
                    },
                },
                "bad": "not a mapping",
            },
        }
    )
    samples = scrape()
    pool = {"pool": "web2:77", "host": "web2", "appname": "shop"}
    scaled = {**pool, "queues": "high,low"}
    assert value(samples, "resque_pool_autoscale_floor_workers", **scaled) == 1
    assert value(samples, "resque_pool_autoscale_max_workers", **scaled) == 8
    assert value(samples, "resque_pool_autoscale_target_workers", **scaled) == 4
    assert value(samples, "resque_pool_autoscale_ups_total", **scaled) == 2
    assert value(samples, "resque_pool_autoscale_downs_total", **scaled) == 1
    changed = value(samples, "resque_pool_autoscale_last_change_timestamp_seconds", **scaled)
    assert changed == 1796664723.0
    # What the pool wants now: the autoscaled list's target and the fixed list's count.
    assert value(samples, "resque_pool_workers_desired", **pool) == 6
