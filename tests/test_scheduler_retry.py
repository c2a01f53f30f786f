"""Retries on resque-retry's key: counting, backoff through the delayed queue, give-up
with one failure entry, callbacks, DirtyExit (real Redis; workers in process and forked)."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from resque_pool import enqueue, job
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import registry
from resque_pool.resque.retry import attempts_in, retry_key, ruby_join
from resque_pool.scheduler import delayed, mover
from resque_pool.scheduler.retry import Retry
from resque_pool.worker.loop import Worker

FAR = 10**6  # seconds: any delayed retry is due by then


@pytest.fixture(autouse=True)
def _forget_jobs():
    before = set(registry.names())
    yield
    for name in set(registry.names()) - before:
        registry.remove(name)


def note(*parts) -> None:
    """Record a call in Redis (works from a forked job child too)."""
    get_redis().rpush(key("test", "calls"), json.dumps(parts))


def calls(resque) -> list:
    return [json.loads(c) for c in resque.client.lrange(resque.key("test", "calls"), 0, -1)]


def work(queues, fork=False) -> None:
    Worker(queues, interval=0, fork_per_job=fork).work()


def failed(resque) -> list[dict]:
    return [json.loads(e) for e in resque.client.lrange(resque.key("failed"), 0, -1)]


def test_retry_key_is_resque_retrys():
    ns = get_redis  # noqa: F841 (the key is namespaced like every Resque key)
    digest = hashlib.sha1(b"44-masterbrew").hexdigest()
    assert retry_key("Archive", [44, "masterbrew"]).endswith(f":resque-retry:Archive:{digest}")
    assert retry_key("Archive", []).endswith(":resque-retry:Archive")
    assert ruby_join([True, None, 3, ["a", [1]], "x y"]) == "true--3-a-1-x y"
    # Whitespace is removed from the whole key, as resque-retry's gsub(/\s/, '') does.
    assert " " not in retry_key("My Job", [1])


def test_backoff_through_the_delayed_queue_then_one_failure_entry(resque):
    @job(
        queue="q",
        name="Flaky",
        retry=Retry(
            limit=2,
            delay=[10, 20],
            on_retry=lambda e, n, *a: note("retry", n, *a),
            on_give_up=lambda e, n, *a: note("give_up", n, *a),
        ),
    )
    def flaky(n):
        raise RuntimeError("boom")

    flaky.enqueue(7)
    counter = retry_key("Flaky", [7])
    started = time.time()
    work(["q"])
    assert failed(resque) == []
    assert resque.client.get(counter) == "0"
    assert 3600 < resque.client.ttl(counter) <= 3610
    [stamp] = delayed.timestamps()
    assert started + 10 - 1 <= stamp <= time.time() + 10
    assert delayed.items_at(stamp)[0].item == '{"class":"Flaky","args":[7],"queue":"q"}'
    assert mover.move_due(now=time.time() + FAR).moved == 1
    work(["q"])
    assert resque.client.get(counter) == "1"
    assert failed(resque) == []
    [stamp2] = delayed.timestamps()
    assert stamp2 >= stamp + 10 - 1  # the second delay is 20 s
    mover.move_due(now=time.time() + FAR)
    work(["q"])
    [entry] = failed(resque)
    assert entry["exception"] == "RuntimeError"
    assert entry["error"] == "boom (gave up after 3 attempts)"
    assert entry["payload"] == {"class": "Flaky", "args": [7]}
    assert attempts_in(entry) == 3
    assert not resque.client.exists(counter)
    assert delayed.delayed_count() == 0
    assert calls(resque) == [["retry", 1, 7], ["retry", 2, 7], ["give_up", 3, 7]]
    # Every failed attempt counts in stat:failed, as in Ruby.
    assert resque.client.get(resque.key("stat", "failed")) == "3"


def test_no_delay_requeues_at_once_on_the_retry_queue(resque):
    @job(queue="q", name="Now", retry=Retry(limit=1, queue="retries"))
    def now(n):
        raise ValueError("x")

    now.enqueue(1)
    work(["q"])
    assert resque.client.lrange(resque.key("queue", "retries"), 0, -1) == [
        '{"class":"Now","args":[1]}'
    ]
    assert delayed.delayed_count() == 0
    work(["retries"])
    assert [e["error"] for e in failed(resque)] == ["x (gave up after 2 attempts)"]


def test_success_after_a_failure_forgets_the_attempts(resque):
    @job(queue="q", name="SecondTime", retry=3)
    def second_time(token):
        if get_redis().incr(key("test", "runs")) == 1:
            raise RuntimeError("first time")

    second_time.enqueue("t")
    # Each attempt runs in a forked job child; the retry (no delay) is queued at once and
    # the draining worker takes it.
    work(["q"], fork=True)
    assert not resque.client.exists(retry_key("SecondTime", ["t"]))
    assert failed(resque) == []
    assert resque.client.get(resque.key("test", "runs")) == "2"


def test_give_up_on_and_retry_on(resque):
    @job(
        queue="q",
        name="Picky",
        retry=Retry(limit=5, retry_on=(OSError,), give_up_on=(PermissionError,)),
    )
    def picky(kind):
        raise {"os": OSError, "perm": PermissionError, "value": ValueError}[kind]("no")

    for kind in ("os", "perm", "value"):
        picky.enqueue(kind)
    work(["q"])
    # The worker drains the queue, retries included (no delay).
    assert sorted((e["payload"]["args"][0], e["error"]) for e in failed(resque)) == [
        ("os", "no (gave up after 6 attempts)"),
        ("perm", "no (gave up after 1 attempt)"),  # a PermissionError is an OSError too
        ("value", "no (gave up after 1 attempt)"),
    ]


def test_a_dirty_exit_is_retried_like_any_failure(resque):
    @job(queue="q", name="Dies", retry=Retry(limit=1))
    def dies():
        os._exit(3)

    dies.enqueue()
    work(["q"], fork=True)  # the child dies twice: the first time is retried
    [entry] = failed(resque)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"].endswith("(gave up after 2 attempts)")


def test_a_count_ruby_left_is_continued(resque):
    @job(queue="q", name="Shared", retry=Retry(limit=1))
    def shared(a, b):
        raise RuntimeError("again")

    # Ruby's resque-retry already ran attempt 0 of Shared(44, "x") and scheduled a retry.
    resque.client.set(resque.key("resque-retry:Shared:" + hashlib.sha1(b"44-x").hexdigest()), "0")
    enqueue("Shared", 44, "x")
    work(["q"])
    assert [e["error"] for e in failed(resque)] == ["again (gave up after 2 attempts)"]


def test_a_payload_that_cannot_run_gives_up_at_once(resque):
    @job(queue="q", name="TwoArgs", retry=Retry(limit=5))
    def two_args(a, b):
        pass

    resque.client.rpush(resque.key("queue", "q"), '{"class":"TwoArgs","args":[1]}')
    work(["q"])
    [entry] = failed(resque)
    assert entry["exception"] == "BadArguments" or "BadArguments" in entry["exception"]
    assert entry["error"].endswith("(gave up after 1 attempt)")


def test_jitter_and_policy_checks():
    policy = Retry(limit=3, delay=[10, 100], jitter=(0.5, 1.5))
    for attempt, base in ((0, 10), (1, 100), (5, 100)):
        assert base * 0.5 <= policy.delay_for(attempt) <= base * 1.5
    assert Retry(limit=-1).retries(RuntimeError(), 10**6)
    assert not Retry(limit=0).retries(RuntimeError(), 0)
    with pytest.raises(ValueError):
        Retry(delay=[])
    with pytest.raises(TypeError):
        job(queue="q", name="BadRetry", retry="3")


def test_the_give_up_entry_keeps_the_payloads_exact_bytes(resque):
    # As a failure without a retry policy does (resque/outcomes.py): 1.50 stays 1.50, never
    # decoded and re-encoded as 1.5.
    @job(queue="q", name="Exact", retry=Retry(limit=0))
    def exact(amount):
        raise RuntimeError("no")

    resque.client.rpush(resque.key("queue", "q"), '{"class":"Exact","args":[1.50]}')
    work(["q"])
    [raw] = resque.client.lrange(resque.key("failed"), 0, -1)
    assert ',"payload":{"class":"Exact","args":[1.50]},' in raw
    assert json.loads(raw)["error"] == "no (gave up after 1 attempt)"
