"""Moving due delayed jobs: exact bytes, routing, several movers, a mover SIGKILLed
mid-move, and the scheduler child of a pool: supervised, absent with the setting off, and
waking idle workers for the jobs it moves (real Redis, real processes)."""

from __future__ import annotations

import collections
import json
import os
import signal
import time

import pytest

from resque_pool import job
from resque_pool.resque.delayed import delayed_push
from resque_pool.resque.jobs import registry
from resque_pool.scheduler import delayed, mover
from tests.support.common import wait_until
from tests.support.pool_fixtures import log_times, write
from tests.support.processes import alive, worker_titles

PAST = 1_000_000_000  # 2001-09-09: due for any mover


@pytest.fixture
def jobs():
    before = set(registry.names())
    yield
    for name in set(registry.names()) - before:
        registry.remove(name)


def push_due(resque, count: int, stamps: int = 1, queue: str = "demo") -> set[str]:
    """``count`` distinct due items spread over ``stamps`` past timestamps."""
    items = set()
    for n in range(count):
        item = f'{{"class":"Record","args":["tok-{n}"],"queue":"{queue}"}}'
        delayed_push(PAST + n % stamps, item)
        items.add(item)
    return items


def queue_entries(resque, queue: str = "demo") -> list[str]:
    return resque.client.lrange(resque.key("queue", queue), 0, -1)


def expected_entries(count: int) -> list[str]:
    return [f'{{"class":"Record","args":["tok-{n}"]}}' for n in range(count)]


def assert_nothing_left(resque) -> None:
    assert resque.client.zcard(resque.key("delayed_queue_schedule")) == 0
    assert not list(resque.client.scan_iter(match=resque.key("delayed", "*")))
    assert not list(resque.client.scan_iter(match=resque.key("timestamps", "*")))


def test_a_due_item_becomes_exactly_the_entry_resque_pushes(resque):
    item = '{"class":"Archive","args":[44,"é/ü",{"a":1.50}],"queue":"file_serve"}'
    delayed_push(PAST, item)
    assert mover.move_due().moved == 1
    # Cut from the item's bytes: 1.50 stays 1.50 (a re-encoder would write 1.5).
    assert queue_entries(resque, "file_serve") == [
        '{"class":"Archive","args":[44,"é/ü",{"a":1.50}]}'
    ]
    assert resque.client.smembers(resque.key("queues")) == {"file_serve"}
    assert_nothing_left(resque)


def test_items_not_yet_due_stay(resque, jobs):
    @job(queue="later", name="Later")
    def later(n):
        pass

    result = later.enqueue_in(3600, 1)
    delayed_push(PAST, '{"class":"Later","args":[0],"queue":"later"}')
    assert mover.move_due().moved == 1
    assert delayed.timestamps() == [result.timestamp]
    assert delayed.delayed_count() == 1


def test_an_item_in_another_key_order_is_pushed_as_it_is(resque):
    item = '{"queue":"q","class":"X","args":[1]}'
    delayed_push(PAST, item)
    assert mover.move_due().moved == 1
    assert queue_entries(resque, "q") == [item]


def test_old_items_without_queue_use_the_registered_queue_or_wait(resque, jobs, caplog):
    @job(queue="known", name="Known")
    def known(n):
        pass

    delayed_push(PAST, '{"class":"Known","args":[1]}')
    delayed_push(PAST + 1, '{"class":"RubyOnly","args":[2]}')
    delayed_push(PAST + 2, '{"class":"Known","args":[3],"queue":"known"}')
    result = mover.move_due()
    assert result.moved == 2
    assert result.stuck == {PAST + 1}
    assert queue_entries(resque, "known") == [
        '{"class":"Known","args":[1]}',
        '{"class":"Known","args":[3]}',
    ]
    # Left in place for a scheduler that knows the class (Ruby's), and said so once.
    assert delayed.timestamps() == [PAST + 1]
    assert "cannot be routed here" in caplog.text
    assert mover.move_due().moved == 0
    assert caplog.text.count("cannot be routed here") == 1


def test_an_emptied_timestamp_leaves_the_schedule(resque, jobs):
    delayed_push(PAST, '{"class":"X","args":[1],"queue":"q"}')
    delayed.remove_delayed("X", 1, queue="q")
    assert delayed.timestamps() == [PAST]  # as in Ruby: the mover cleans it up
    assert mover.move_due().moved == 0
    assert_nothing_left(resque)


def test_the_same_item_twice_at_one_time_moves_twice_and_keeps_its_index(resque):
    item = '{"class":"X","args":[1],"queue":"q"}'
    delayed_push(PAST, item)
    delayed_push(PAST, item)
    delayed_push(PAST + 10**9, item)  # far in the future: stays
    assert mover.move_due().moved == 2
    assert queue_entries(resque, "q") == ['{"class":"X","args":[1]}'] * 2
    assert resque.client.smembers(resque.key("timestamps", item)) == {f"delayed:{PAST + 10**9}"}


def test_max_items_bounds_one_call(resque):
    push_due(resque, 250, stamps=3)
    assert mover.move_due(max_items=120).moved == 120
    assert mover.move_due().moved == 130
    assert sorted(queue_entries(resque)) == sorted(expected_entries(250))
    assert_nothing_left(resque)


def test_two_movers_at_once_move_every_item_exactly_once(resque, spawn_manage):
    count = 3000
    push_due(resque, count, stamps=7)
    movers = [spawn_manage("resque_scheduler") for _ in range(2)]
    wait_until(
        lambda: (
            resque.client.llen(resque.key("queue", "demo")) >= count
            and not resque.client.exists(resque.key("delayed_queue_schedule"))
        ),
        60,
        message="every item moved",
    )
    time.sleep(1.5)  # both movers run another pass: nothing more appears
    for process in movers:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    entries = queue_entries(resque)
    assert len(entries) == count
    assert sorted(entries) == sorted(expected_entries(count))
    assert_nothing_left(resque)


def test_a_mover_killed_mid_move_loses_and_duplicates_nothing(resque, spawn_manage):
    count = 1000
    items = push_due(resque, count, stamps=count)  # 10 rounds of 100 times each
    process = spawn_manage("resque_scheduler")
    queue = resque.key("queue", "demo")
    wait_until(lambda: resque.client.llen(queue) > 0, 60, 0.0005, "the first moves")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    moved = queue_entries(resque)
    print(f"killed after {len(moved)} of {count} moves")  # -s shows where the kill landed
    left = [
        raw
        for stamp in delayed.timestamps(0, 1000)
        for raw in resque.client.lrange(resque.key("delayed", str(stamp)), 0, -1)
    ]
    # Every item is in exactly one place: on the queue or still delayed.
    moved_tokens = collections.Counter(json.loads(entry)["args"][0] for entry in moved)
    left_tokens = collections.Counter(json.loads(raw)["args"][0] for raw in left)
    assert max(moved_tokens.values()) == 1 and (not left_tokens or max(left_tokens.values()) == 1)
    assert not set(moved_tokens) & set(left_tokens)
    assert len(moved) + len(left) == count
    # The reverse index still names exactly the items left.
    indexed = {raw for raw in items if resque.client.exists(resque.key("timestamps", raw))}
    assert indexed == set(left)
    # Another mover finishes the work.
    mover.move_due()
    assert sorted(queue_entries(resque)) == sorted(expected_entries(count))
    assert_nothing_left(resque)


def test_scheduler_command_stops_on_term(resque, spawn_manage):
    process = spawn_manage("resque_scheduler", "-a", "demo")
    delayed_push(int(time.time()) + 1, '{"class":"Record","args":["x"],"queue":"demo"}')
    wait_until(lambda: queue_entries(resque), 10, message="the item due in a second")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    output = process.stdout.read()
    assert "scheduler started" in output and "scheduler finished" in output


def scheduler_children(pool) -> list[int]:
    return [pid for pid, title in worker_titles(pool.pid).items() if "resque-scheduler" in title]


def test_a_pool_runs_a_supervised_scheduler_child(resque, start_pool, tmp_path):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), settings={"RESQUE_SCHEDULER": True})
    first = wait_until(lambda: scheduler_children(pool), 30, message="the scheduler child")[0]
    delayed_push(int(time.time()) + 1, '{"class":"Record","args":["a"],"queue":"demo"}')
    done = resque.key("demo", "done")
    wait_until(lambda: resque.client.sismember(done, "a"), 20, message="the delayed job ran")
    # Killed, it is replaced like a worker.
    os.kill(first, signal.SIGKILL)
    second = wait_until(
        lambda: [pid for pid in scheduler_children(pool) if pid != first], 30, message="a new one"
    )[0]
    pool.wait_for_log(rf"scheduler {first} exited")
    delayed_push(int(time.time()) + 1, '{"class":"Record","args":["b"],"queue":"demo"}')
    wait_until(lambda: resque.client.sismember(done, "b"), 20, message="the second delayed job")
    # The manager's exit stops it.
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    wait_until(lambda: not alive(second), 10, message="the scheduler to exit")


def test_no_scheduler_option_runs_none(resque, start_pool, tmp_path):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), "--no-scheduler", settings={"RESQUE_SCHEDULER": True})
    pool.wait_for_workers({"demo": 1})
    assert scheduler_children(pool) == []
    assert "spawned scheduler" not in pool.log()


def test_the_setting_off_runs_no_scheduler_child_but_the_workers(resque, start_pool, tmp_path):
    from resque_pool import enqueue

    config = write(tmp_path / "pool.yml", "demo: 2\n")
    pool = start_pool("-c", str(config), settings={"RESQUE_SCHEDULER": False})
    pool.wait_for_workers({"demo": 2})
    delayed_push(PAST, '{"class":"Record","args":["delayed"],"queue":"demo"}')
    enqueue("Record", "now")
    done = resque.key("demo", "done")
    wait_until(lambda: resque.client.sismember(done, "now"), 20, message="a job run by a worker")
    # The manager reconciles (workers and scheduler child) at least once a second: over
    # three seconds it had several chances to start a scheduler, and started none.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert scheduler_children(pool) == [], pool.titles()
        time.sleep(0.1)
    assert len(pool.workers()) == 2
    # Nothing moved the job that was due all along.
    assert delayed.timestamps() == [PAST]
    assert not resque.client.sismember(done, "delayed")
    assert "spawned scheduler" not in pool.log()


def test_a_moved_job_wakes_an_idle_worker_long_before_its_poll(resque, start_pool, tmp_path):
    """The mover pushes a wake-up token with each job it moves: a pool worker polling
    every 600 s takes a delayed job as soon as the scheduler child moves it."""
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool(
        "-c", str(config), env={"INTERVAL": "600"}, settings={"RESQUE_SCHEDULER": True}
    )
    pool.wait_for_workers({"demo": 1})
    wait_until(lambda: scheduler_children(pool), 30, message="the scheduler child")
    result = delayed.enqueue_in(2, "Record", "woken")
    done = resque.key("demo", "done")
    # Far below INTERVAL: only a wake-up gets the job to the idle worker within this bound.
    wait_until(
        lambda: resque.client.sismember(done, "woken"),
        30,
        message=f"the delayed job run (log:\n{pool.log()})",
    )
    [started] = log_times(pool.log(), r"got: .*Record")
    assert started >= result.timestamp  # not before its time
    print(f"started {started - result.timestamp:.3f}s after its time")  # -s shows it


def test_the_scheduler_logs_a_redis_outage_once_and_its_end_once(resque, settings, caplog):
    from resque_pool.resque import connection
    from resque_pool.scheduler.process import Scheduler

    caplog.set_level("INFO", logger="resque_pool.scheduler")
    scheduler = Scheduler()
    try:
        settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"
        connection.reset_connections()
        for _ in range(3):
            scheduler.tick()
        settings.RESQUE_REDIS_URL = resque.url
        connection.reset_connections()
        scheduler.tick()
        scheduler.tick()
    finally:
        scheduler.recurring.stop()
        scheduler.waker.close()
    # Only the mover's Redis errors: recurring schedules (no database here) log on their own.
    down = [r for r in caplog.records if r.getMessage().startswith("scheduler: ConnectionError")]
    assert [r.levelname for r in down] == ["ERROR"]
    assert [r.getMessage() for r in caplog.records].count("scheduler: Redis answers again") == 1
