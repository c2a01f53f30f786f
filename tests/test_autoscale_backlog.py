"""What the autoscaler reads of an autoscaled list's queues (capacity/backlog.py), against
a real Redis: the jobs waiting across the list's queues (a wildcard list's too, its
exclusions left out), and a lower bound on the oldest one's wait from this reader's own
looks and from the metrics' head records."""

from __future__ import annotations

from resque_pool.capacity.backlog import Backlog, BacklogReader
from resque_pool.resque.job_metrics import QUEUE_HEADS


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def push(resque, queue: str, count: int) -> None:
    resque.client.sadd(resque.key("queues"), queue)
    for n in range(count):
        resque.client.rpush(resque.key("queue", queue), f'{{"class":"Noop","args":[{n}]}}')


def test_jobs_waiting_across_a_lists_queues_and_a_wildcards(resque):
    push(resque, "high", 3)
    push(resque, "low", 2)
    push(resque, "slow", 7)
    reader = BacklogReader(Clock())
    found = reader.read(["high,low", "*,!slow", "empty"])
    assert {text: backlog.jobs for text, backlog in found.items()} == {
        "high,low": 5,
        "*,!slow": 5,
        "empty": 0,
    }


def test_the_wait_is_how_long_the_queue_held_jobs_at_every_look(resque):
    clock = Clock()
    reader = BacklogReader(clock)
    push(resque, "mail", 1)
    assert reader.read(["mail"]) == {"mail": Backlog(1, 0.0)}  # first seen now
    clock.now += 6
    assert reader.read(["mail"]) == {"mail": Backlog(1, 6.0)}
    resque.client.delete(resque.key("queue", "mail"))
    clock.now += 2
    assert reader.read(["mail"]) == {"mail": Backlog(0, 0.0)}
    push(resque, "mail", 2)  # emptied in between: the clock starts again
    clock.now += 2
    assert reader.read(["mail"]) == {"mail": Backlog(2, 0.0)}


def test_a_metrics_scrapes_head_record_gives_a_longer_wait(resque):
    push(resque, "mail", 1)
    seconds, _micro = resque.client.time()
    resque.client.hset(resque.key(QUEUE_HEADS), "mail", f"{'0' * 40} {seconds - 90}")
    backlog = BacklogReader(Clock()).read(["mail"])["mail"]
    assert backlog.jobs == 1 and 90 <= backlog.waited <= 92
    # A record of another shape is no record.
    resque.client.hset(resque.key(QUEUE_HEADS), "mail", "garbage")
    assert BacklogReader(Clock()).read(["mail"])["mail"] == Backlog(1, 0.0)
