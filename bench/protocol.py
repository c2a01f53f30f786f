"""The protocol limit: the Redis commands one in-process job costs our worker, found with
MONITOR, then replayed by bare processes that do nothing else.

``capture`` runs one ``resque_work`` (``FORK_PER_JOB=false``, ``INTERVAL=0``) over a few
staged jobs while a MONITOR connection records every command; the commands the worker sent
from one reserve (``LPOP`` of the queue, or the reserve script's ``EVALSHA``) to the next
are one job's cost. ``replay`` (run by ``python -m bench.clients protocol``) sends that
list per job, packed once, one round trip per group of commands Redis ran within
microseconds of each other (MONITOR does not show pipelines), taking real jobs off the
queue until it is empty.
"""

from __future__ import annotations

import re
import threading
import time

import redis

from bench.common import PYTHON, QUEUE, BenchError, env_for, launch, stop, wait_for

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})|\\(.)", re.S)
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}
END = "bench-monitor-end"
CAPTURE_JOBS = 12
PIPELINE_GAP = 20e-6


def _unescape(raw: bytes) -> bytes:
    def one(match: re.Match) -> bytes:
        if match.group(1):
            return bytes([int(match.group(1), 16)])
        return _SIMPLE.get(match.group(2), match.group(2))

    return _ESCAPE.sub(one, raw)


def parse_monitor_line(line: bytes) -> tuple[float, str, list[bytes]]:
    """``1700000000.123456 [0 127.0.0.1:5555] "LPOP" "k"`` ->
    (1700000000.123456, "127.0.0.1:5555", [b"LPOP", b"k"])."""
    head, _, rest = line.partition(b"] ")
    client = head.rsplit(b" ", 1)[-1].decode()
    return float(head.split(b" ", 1)[0]), client, [_unescape(arg) for arg in _ARG.findall(rest)]


def _monitor(url: str, lines: list[bytes], ready: threading.Event) -> None:
    client = redis.Redis.from_url(url)
    connection = client.connection_pool.get_connection("MONITOR")
    try:
        connection.send_command("MONITOR")
        connection.read_response()
        ready.set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = connection.read_response()
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            lines.append(line)
            if END.encode() in line:
                return
    finally:
        connection.disconnect()


def capture(url: str, client: redis.Redis, queue_key: str, payload) -> list[list[bytes]]:
    """One job's commands as our worker sends them now."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd(queue_key.rsplit(":queue:", 1)[0] + ":queues", QUEUE)
    for number in range(CAPTURE_JOBS):
        pipe.rpush(queue_key, payload(number))
    pipe.execute()
    lines: list[bytes] = []
    ready = threading.Event()
    thread = threading.Thread(target=_monitor, args=(url, lines, ready), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise BenchError("MONITOR did not start")
    worker = launch(
        [PYTHON, "manage.py", "resque_work", "--queues", QUEUE, "--interval", "0"],
        env_for(url, FORK_PER_JOB="false"),
    )
    try:
        wait_for(lambda: worker.poll() is not None, 60, "the capturing worker to drain", 0.05)
    finally:
        stop(worker)
    client.echo(END)
    thread.join(10)
    return one_job(lines, queue_key)


def one_job(lines: list[bytes], queue_key: str) -> list[list[list[bytes]]]:
    """One job's commands, grouped into round trips (from the middle of the drain, so
    neither start-up nor the last empty reserve is counted)."""
    # Commands a Lua script runs show up as client "lua" after its EVALSHA: the EVALSHA
    # is the round trip, they are not.
    commands = [
        parsed
        for parsed in (parse_monitor_line(line) for line in lines if b'"' in line)
        if parsed[1] != "lua"
    ]
    queue = queue_key.encode()
    reserves = [
        index
        for index, (_at, _client, args) in enumerate(commands)
        if (args[:1] == [b"LPOP"] and args[1:2] == [queue])
        or (args[:1] in ([b"EVALSHA"], [b"EVAL"]) and queue in args)
    ]
    if len(reserves) < 3:
        raise BenchError(f"MONITOR saw {len(reserves)} reserves of {queue_key}; expected more")
    middle = len(reserves) // 2
    first, last = reserves[middle], reserves[middle + 1]
    # Only the capturing worker talks to Redis now, but its connections may take turns
    # (its heartbeat thread shares the connection pool): keep every client, minus the
    # heartbeat's own commands, which are per interval, not per job.
    mine = [
        (at, args)
        for at, _client, args in commands[first:last]
        if args != [b"TIME"] and not any(arg.endswith(b"workers:heartbeat") for arg in args)
    ]
    # MONITOR does not show pipelines: commands Redis ran within PIPELINE_GAP of the one
    # before came in the same read, so they were one round trip.
    trips: list[list[list[bytes]]] = []
    previous = None
    for at, args in mine:
        if previous is None or at - previous > PIPELINE_GAP:
            trips.append([])
        trips[-1].append(args)
        previous = at
    return trips


def replay(client: redis.Redis, template: list[list[list[bytes]]], queue_key: str) -> int:
    """Run the template per job until the queue is empty; the number of jobs taken.

    Each round trip is packed once and written on one connection, and its replies are read
    as redis-py reads them: the least any client can do for these commands (our worker
    sends its per-job commands the same way, ``resque_pool/resque/packed.py``), so the
    figure stays a ceiling rather than a client's overhead."""
    connection = client.connection_pool.make_connection()
    connection.connect()
    try:
        trips = [([b"".join(connection.pack_commands(trip))], len(trip)) for trip in template]
        (first, first_replies), rest = trips[0], trips[1:]
        jobs = 0
        while True:
            connection.send_packed_command(first)
            replies = [connection.read_response() for _ in range(first_replies)]
            if replies[0] is None:  # the reserve found the queue empty
                return jobs
            for packed, count in rest:
                connection.send_packed_command(packed)
                for _ in range(count):
                    connection.read_response()
            jobs += 1
    finally:
        connection.disconnect()
