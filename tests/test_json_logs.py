"""``RESQUE_LOG_FORMAT = "json"``: every process of a real pool (manager, workers, job
children, the scheduler child) writes one JSON object per line, with the worker, queue,
job class and task id where they apply; a bad value is refused in one line."""

from __future__ import annotations

import json
import re
import signal

from resque_pool import enqueue
from testproject.demo import tasks as demo
from tests.support.common import wait_until
from tests.support.pool_fixtures import first_failure, write

BANDS = "default.high,default,default.low"


def test_every_process_of_a_pool_logs_json_lines(start_pool, tmp_path, resque):
    config = write(tmp_path / "pool.yml", f'demo: 1\n"{BANDS}": 1\n')
    pool = start_pool(
        "-c",
        str(config),
        env={"RESQUE_LOG_FORMAT": "json"},
        settings={"RESQUE_SCHEDULER": True},
    )
    wait_until(
        lambda: len(resque.client.smembers(resque.key("workers"))) == 2, 30, 0.1, "2 workers"
    )
    enqueue("Fail", "json please")
    failure = first_failure(resque, pool)
    result = demo.add.enqueue(1, 2)

    def task_done():
        result.refresh()
        return result.is_finished

    wait_until(task_done, 30, 0.1, "the task")
    pool.wait_for_log(r'"message": "scheduler')
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0

    lines = pool.log().splitlines()
    assert len(lines) > 10
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert list(entry)[:4] == ["time", "level", "logger", "pid"], entry
        assert entry["time"].endswith("Z") and "message" in entry

    # The master (the pool's pid) and the generation it started, which manages the workers.
    (generation,) = {
        int(found.group(1))
        for e in entries
        if e["pid"] == pool.pid and (found := re.match(r"generation 1 \(pid (\d+)\)", e["message"]))
    }
    manager = [e for e in entries if e["pid"] in (pool.pid, generation)]
    assert any(e["message"] == "started manager" for e in manager)
    assert any(e["message"] == "master finished" for e in manager)
    assert all("worker" not in e for e in manager)

    scheduler = [e for e in entries if e["logger"] == "resque_pool.scheduler.process"]
    assert scheduler and all(e["pid"] != pool.pid for e in scheduler)

    # The worker's own lines carry its id; its job child's (another pid) the job too.
    registered = [
        e for e in entries if e["message"].startswith("Worker ") and "registered" in e["message"]
    ]
    worker_pids = {e["pid"]: e["worker"] for e in registered}
    assert len(worker_pids) == 2
    failed = [e for e in entries if "failed: RuntimeError: json please" in e["message"]]
    assert len(failed) == 1
    (child,) = failed
    assert child["level"] == "ERROR"
    assert child["pid"] not in worker_pids and child["pid"] not in (pool.pid, generation)
    assert child["worker"] == failure["worker"]
    assert (child["queue"], child["job_class"]) == ("demo", "Fail")

    got_task = [e for e in entries if e["message"].startswith("got: ") and "task_id" in e]
    assert [e["task_id"] for e in got_task] == [result.id]
    assert got_task[0]["job_class"] == "testproject.demo.tasks.add"
    assert got_task[0]["worker"] == worker_pids[got_task[0]["pid"]]
    # After the job, the worker's lines no longer name it.
    assert all(
        "queue" not in e
        for e in entries
        if e["message"].startswith("Worker ") and "exited" in e["message"]
    )


def test_a_log_format_other_than_plain_or_json_is_refused(run_manage):
    for command in (["resque_pool", "--test"], ["resque_work", "--queues", "x", "--interval", "0"]):
        result = run_manage(*command, env={"RESQUE_LOG_FORMAT": "yaml"})
        assert result.returncode != 0
        assert "RESQUE_LOG_FORMAT must be 'plain' or 'json', not 'yaml'" in result.stderr
        assert "Traceback" not in result.stderr
