"""Autoscaling with real pools and real jobs: a burst grows an autoscaled list to its
maximum and the cooldown brings it back to its floor; a shrink stops only idle workers
(the job in flight finishes, no job is interrupted); two pools that autoscale one list
share its backlog instead of both growing by all of it."""

from __future__ import annotations

from resque_pool import enqueue
from resque_pool.models import WorkerCount
from resque_pool.pool import state as pool_state
from tests.support.common import wait_until
from tests.support.pool_fixtures import write

FAST = {
    "RESQUE_POOL_AUTOSCALE_INTERVAL": 0.3,
    "RESQUE_POOL_AUTOSCALE_COOLDOWN": 3,
}


def target(pool) -> dict:
    """The demo list's autoscaling as last published (empty until a state has it: a
    state is published after the log line that says the list autoscales)."""
    return pool.state().get("autoscale", {}).get("demo", {})


def done(resque) -> set[str]:
    return resque.client.smembers(resque.key("demo", "done"))


def test_a_burst_grows_the_list_to_its_maximum_and_the_cooldown_brings_it_back(
    start_pool, tmp_path, resque
):
    config = write(tmp_path / "pool.yml", "demo: 1\nautoscale:\n  demo: 4\n")
    pool = start_pool("-c", str(config), settings=FAST)
    pool.wait_for_workers({"demo": 1})
    assert target(pool) == {
        "floor": 1,
        "max": 4,
        "target": 1,
        "decision": None,
        "ups": 0,
        "downs": 0,
    }

    tokens = [f"burst-{n}" for n in range(16)]
    for token in tokens:
        enqueue("SlowRecord", token, 0.5)

    grown = wait_until(lambda: target(pool).get("target") == 4 and target(pool), 20, 0.1)
    assert grown["decision"]["from"] == 1
    assert "jobs waiting" in grown["decision"]["reason"]
    wait_until(lambda: len(pool.workers()) == 4, 20, 0.1, lambda: pool.log())
    pool.wait_for_log(r"autoscale demo: 1 -> 4 workers: \d+ jobs waiting")

    wait_until(lambda: done(resque) == set(tokens), 60, 0.2, lambda: pool.log())
    back = wait_until(lambda: target(pool).get("target") == 1 and target(pool), 30, 0.2)
    assert back["decision"]["reason"].startswith("needed at most 1 for 3s")
    pool.wait_for_workers({"demo": 1})
    # Every job ran once, none failed: the shrink stopped idle workers only.
    assert resque.client.get(resque.key("stat", "failed")) in (None, "0")
    assert pool.process.poll() is None


def test_a_shrink_stops_the_idle_workers_and_lets_the_busy_one_finish(start_pool, tmp_path, resque):
    config = write(tmp_path / "pool.yml", "demo: 1\nautoscale:\n  demo: 3\n")
    pool = start_pool("-c", str(config), settings=FAST)
    pool.wait_for_workers({"demo": 1})
    enqueue("SlowRecord", "long", 12)
    for n in range(4):
        enqueue("SlowRecord", f"short-{n}", 0.3)
    wait_until(lambda: target(pool).get("target") == 3, 20, 0.1, lambda: pool.log())

    def busy_pid():
        for pid, title in pool.titles().items():
            if "Processing demo" in title or "Forked" in title:
                return pid
        return None

    wait_until(lambda: {"short-0", "short-1", "short-2", "short-3"} <= done(resque), 30, 0.2)
    long_runner = wait_until(busy_pid, 10, 0.1, lambda: str(pool.titles()))
    # The cooldown passes while the long job runs: the list shrinks to its busy worker.
    shrunk = wait_until(lambda: target(pool).get("target") == 1 and target(pool), 20, 0.2)
    assert "1 busy" in shrunk["decision"]["reason"]
    wait_until(lambda: pool.workers() == [long_runner], 20, 0.2, lambda: str(pool.titles()))
    assert "long" not in done(resque)  # still running: it was not stopped
    wait_until(lambda: "long" in done(resque), 30, 0.2, lambda: pool.log())
    assert resque.client.get(resque.key("stat", "failed")) in (None, "0")


def test_two_pools_that_autoscale_one_list_share_its_backlog(start_pool, tmp_path, resque):
    config = write(tmp_path / "pool.yml", "demo: 1\nautoscale:\n  demo: 8\n")
    settings = {**FAST, "RESQUE_POOL_AUTOSCALE_COOLDOWN": 60}
    first = start_pool("-c", str(config), settings=settings, name="first")
    second = start_pool("-c", str(config), settings=settings, name="second")
    first.wait_for_workers({"demo": 1})
    second.wait_for_workers({"demo": 1})
    first.state(), second.state()  # both have published that they autoscale demo

    for n in range(8):
        enqueue("SlowRecord", f"shared-{n}", 6)

    def targets():
        states = {p["pid"]: p for p in pool_state.all_pools()}
        return [states[pool.pid]["autoscale"]["demo"] for pool in (first, second)]

    grown = wait_until(lambda: all(t["decision"] for t in targets()) and targets(), 20, 0.1)
    # Each took its busy worker and its half of the jobs it saw waiting: 10 at most in
    # all, where without sharing each would have grown by every job it saw.
    assert sum(t["target"] for t in grown) <= 2 + 8, grown
    assert all("(a 1/2 share)" in t["decision"]["reason"] for t in grown), grown


def test_a_maximum_set_in_the_admins_row_reaches_the_running_pool(
    start_pool, database_env, resque
):
    row = WorkerCount.objects.create(queues="demo", count=1)
    pool = start_pool("--pool", "here", env=database_env, settings=FAST)
    pool.wait_for_workers({"demo": 1})
    assert pool.state()["autoscale"] == {}
    # The operator gives the list a maximum: read with the counts, within a loader period.
    row.max_count = 3
    row.save()
    pool.wait_for_log(r"autoscaled lists from database: \{'demo': 3\}")
    tokens = [f"row-{n}" for n in range(9)]
    for token in tokens:
        enqueue("SlowRecord", token, 1)
    wait_until(lambda: target(pool).get("target") == 3, 20, 0.1, lambda: pool.log())
    wait_until(lambda: len(pool.workers()) == 3, 20, 0.1, lambda: pool.log())
    # Fixed again: the list runs its count (the two extra workers stop when idle).
    row.max_count = None
    row.save()
    pool.wait_for_log(r"autoscaled lists from database: \{\}")
    wait_until(lambda: done(resque) == set(tokens), 60, 0.2, lambda: pool.log())
    pool.wait_for_workers({"demo": 1})
    assert resque.client.get(resque.key("stat", "failed")) in (None, "0")
