"""The systems the benchmarks compare: how to start each with N workers, how to see them
registered, fill their queue, and count finished jobs.

- ``ours``: ``manage.py resque_pool`` (one Django load, fork N workers);
- ``separate``: N ``manage.py resque_work`` processes, as without a pool;
- ``rq``: django-rq's ``manage.py rqworker-pool`` (rq's forking worker, or ``SimpleWorker``
  for in-process jobs);
- ``celery``: Celery's prefork pool on a Redis broker (``--max-tasks-per-child 1`` for a
  process per job).

Every system reads the queue ``bench``; jobs are staged in a list of their own and moved
into the live queue with one RENAME, so a drain starts at a known instant.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import redis

from bench.common import NAMESPACE, PYTHON, QUEUE, children, env_for, launch, stop_all

FORK, INPROC = "fork", "inproc"
SETTLE = 1.0


@dataclass
class Running:
    """A started system: its process trees and what it needs to be stopped."""

    processes: list[subprocess.Popen]
    stop_signal: int
    files: list[str] = field(default_factory=list)

    @property
    def roots(self) -> list[int]:
        return [process.pid for process in self.processes]

    def worker_pids(self) -> list[int]:
        if len(self.processes) > 1:
            return self.roots
        return children(self.processes[0].pid)

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        # A short grace: the figures are taken by now, and Redis is flushed before the next
        # launch, so a slow warm shutdown would only lengthen the run.
        stop_all(self.processes, self.stop_signal, timeout=3.0)
        time.sleep(SETTLE)  # let the exits and freed memory settle before the next launch
        for name in self.files:
            with _suppress():
                os.unlink(name)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


class System:
    name = ""
    needs: tuple[str, ...] = ()
    queue_key = ""
    stop_signal = 15
    default_mode = FORK
    # The project's settings as this system runs it (django-rq's pool needs its app).
    settings = "bench.settings"

    def skip_reason(self) -> str | None:
        missing = [module for module in self.needs if importlib.util.find_spec(module) is None]
        return f"not installed: {', '.join(missing)}" if missing else None

    def launch(self, url: str, n: int, mode: str = FORK, **env: str) -> Running:
        raise NotImplementedError

    def registered(self, client: redis.Redis) -> int:
        """How many workers are registered and waiting."""
        raise NotImplementedError

    def done(self, client: redis.Redis) -> int:
        """How many jobs finished since the Redis database was flushed."""
        raise NotImplementedError

    def stage(self, client: redis.Redis, jobs: int) -> None:
        """Put ``jobs`` no-op jobs in the staging list."""
        raise NotImplementedError

    def push_stamp(self, client: redis.Redis) -> None:
        """Enqueue one latency stamp (the enqueue instant is its argument)."""
        raise NotImplementedError

    def push_noop(self, client: redis.Redis) -> None:
        raise NotImplementedError

    def registered_pids(self, client: redis.Redis) -> set[int]:
        """Pids of the workers registered now (a dead one may linger for a while)."""
        raise NotImplementedError

    def release(self, client: redis.Redis) -> None:
        """Move the staged jobs into the live queue, atomically."""
        client.rename(self.queue_key + "-staging", self.queue_key)


class Ours(System):
    name = "ours"
    queue_key = f"{NAMESPACE}:queue:{QUEUE}"
    stop_signal = 3  # QUIT: graceful, as resque-pool's own shutdown

    def launch(self, url, n, mode=FORK, **env):
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
            config.write(f"{QUEUE}: {n}\n")
        cmd = [PYTHON, "manage.py", "resque_pool", "--no-pidfile", "--no-scheduler"]
        if env.pop("DATABASE_COUNTS", None):
            cmd += ["--pool", "bench"]
        else:
            cmd += ["-c", config.name]
        env.setdefault("FORK_PER_JOB", "true" if mode == FORK else "false")
        process = launch(cmd, env_for(url, **env))
        return Running([process], self.stop_signal, [config.name])

    def registered(self, client):
        return client.scard(f"{NAMESPACE}:workers")

    def worker_ids(self, client: redis.Redis) -> set[str]:
        return {member.decode() for member in client.smembers(f"{NAMESPACE}:workers")}

    def done(self, client):
        return int(client.get(f"{NAMESPACE}:stat:processed") or 0)

    def stage(self, client, jobs):
        pipe = client.pipeline(transaction=False)
        pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
        for number in range(jobs):
            pipe.rpush(self.queue_key + "-staging", _payload("BenchNoop", [number]))
            if len(pipe) >= 5000:
                pipe.execute()
        pipe.execute()

    def push_stamp(self, client: redis.Redis) -> None:
        self._push(client, _payload("BenchStamp", [time.time()]))

    def push_noop(self, client: redis.Redis) -> None:
        self._push(client, _payload("BenchNoop", []))

    def _push(self, client: redis.Redis, payload: str) -> None:
        """What ``enqueue()`` sends, in one round trip: the job and a wake-up token for an
        idle worker (``resque_pool/resque/wakeup.py``)."""
        pipe = client.pipeline(transaction=False)
        pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
        pipe.rpush(self.queue_key, payload)
        _wake(pipe, 1)
        pipe.execute()

    def release(self, client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.rename(self.queue_key + "-staging", self.queue_key)
        _wake(pipe, WAKE_TOKENS)  # as enqueue() would have, job by job
        pipe.execute()

    def registered_pids(self, client: redis.Redis) -> set[int]:
        return {int(worker.split(":")[1]) for worker in self.worker_ids(client)}


WAKE_KEY = f"{NAMESPACE}:wakeup:{QUEUE}"
WAKE_TOKENS = 64  # enqueue() keeps at most 64 tokens per queue


def _wake(pipe: redis.client.Pipeline, count: int) -> None:
    pipe.rpush(WAKE_KEY, *["1"] * count)
    pipe.ltrim(WAKE_KEY, -WAKE_TOKENS, -1)
    pipe.expire(WAKE_KEY, 300)


def _payload(name: str, args: list) -> str:
    # Resque's compact JSON, as resque_pool.resque.wire writes it.
    return json.dumps({"class": name, "args": args}, separators=(",", ":"))


class Separate(Ours):
    name = "separate"

    def launch(self, url, n, mode=FORK, **env):
        env.setdefault("FORK_PER_JOB", "true" if mode == FORK else "false")
        cmd = [PYTHON, "manage.py", "resque_work", "--queues", QUEUE]
        return Running([launch(cmd, env_for(url, **env)) for _ in range(n)], self.stop_signal)


class RQ(System):
    name = "rq"
    needs = ("rq", "django_rq")
    queue_key = f"rq:queue:{QUEUE}"
    stop_signal = 2  # INT: rq's warm shutdown
    settings = "bench.settings_rq"

    def launch(self, url, n, mode=FORK, **env):
        cmd = [PYTHON, "manage.py", "rqworker-pool", "--num-workers", str(n)]
        if mode == INPROC:
            cmd += ["--worker-class", "rq.worker.SimpleWorker"]
        cmd.append(QUEUE)
        env.setdefault("DJANGO_SETTINGS_MODULE", self.settings)
        return Running([launch(cmd, env_for(url, **env))], self.stop_signal)

    def registered(self, client):
        return client.scard("rq:workers")

    def done(self, client):
        pipe = client.pipeline(transaction=False)
        for worker in client.smembers("rq:workers"):
            pipe.hget(worker, "successful_job_count")
        return sum(int(count or 0) for count in pipe.execute())

    def stage(self, client, jobs):
        from rq import Queue

        from bench.rq_jobs import noop

        # A queue of its own: the jobs' origin is "bench-staging", which rq's worker only
        # uses for its registries once it took the id from the live queue.
        staging = Queue(f"{QUEUE}-staging", connection=client)
        done = 0
        while done < jobs:
            with client.pipeline() as pipe:
                for number in range(done, min(jobs, done + 2000)):
                    staging.enqueue(noop, number, pipeline=pipe)
                pipe.execute()
            done += 2000

    def push_stamp(self, client: redis.Redis) -> None:
        from rq import Queue

        from bench.rq_jobs import stamp

        Queue(QUEUE, connection=client).enqueue(stamp, time.time())

    def push_noop(self, client: redis.Redis) -> None:
        from rq import Queue

        from bench.rq_jobs import noop

        Queue(QUEUE, connection=client).enqueue(noop)

    def registered_pids(self, client: redis.Redis) -> set[int]:
        pipe = client.pipeline(transaction=False)
        for worker in client.smembers("rq:workers"):
            pipe.hget(worker, "pid")
        return {int(pid) for pid in pipe.execute() if pid}


class Celery(System):
    name = "celery"
    needs = ("celery",)
    queue_key = QUEUE
    stop_signal = 15  # TERM: Celery's warm shutdown
    default_mode = INPROC  # a prefork pool of long-lived children is Celery's default

    def launch(self, url, n, mode=FORK, **env):
        cmd = [PYTHON, "-m", "celery", "-A", "bench.celery_app", "worker", "--pool", "prefork"]
        cmd += ["-c", str(n), "-Q", QUEUE, "--loglevel", "WARNING", "-n", f"bench{os.getpid()}@%h"]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if mode == FORK:
            cmd += ["--max-tasks-per-child", "1"]
        return Running([launch(cmd, env_for(url, **env))], self.stop_signal)

    def registered(self, client):
        from bench.celery_app import CHILDREN_KEY, READY_KEY

        if not client.exists(READY_KEY):
            return 0
        alive = [pid for pid in client.smembers(CHILDREN_KEY) if _alive(int(pid))]
        return len(alive)

    def done(self, client):
        from bench.celery_app import DONE_KEY

        return int(client.get(DONE_KEY) or 0)

    def stage(self, client, jobs):
        from bench.celery_app import app, noop

        with app.producer_or_acquire() as producer:
            for number in range(jobs):
                noop.apply_async((number,), queue=f"{QUEUE}-staging", producer=producer)

    def push_stamp(self, client: redis.Redis) -> None:
        from bench.celery_app import stamp

        stamp.delay(time.time())

    def push_noop(self, client: redis.Redis) -> None:
        from bench.celery_app import noop

        noop.delay()

    def registered_pids(self, client: redis.Redis) -> set[int]:
        from bench.celery_app import CHILDREN_KEY

        return {int(pid) for pid in client.smembers(CHILDREN_KEY) if _alive(int(pid))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SYSTEMS: dict[str, System] = {
    system.name: system for system in (Ours(), Separate(), RQ(), Celery())
}
HOST = socket.gethostname()
