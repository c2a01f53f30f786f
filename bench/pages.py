"""Where a worker's private pages and a forked job's costs come from:

    python -m bench.pages                # all three reports, 8 workers
    python -m bench.pages --n 16 --report mappings

``mappings``: a real ``resque_pool`` of N idle workers, one second after start-up; each
worker's private memory (``Private_Clean + Private_Dirty`` of ``/proc/<pid>/smaps``) by
mapping, averaged over the workers. ``objects``: this process loads Django as the manager
does, forks one worker the way the pool forks it, and after it has idled a second finds
the worker's pages that are no longer shared (``/proc/<pid>/pagemap``, "exclusively
mapped") and names the Python objects, allocated before the fork, that live on them.
``faults``: page faults and CPU per forked job, of a worker and of its job children, beside
a Django-loaded process that only forks and ``_exit``s (the fork floor). Linux only; the
``objects`` report needs to read another process's page map (root or CAP_SYS_ADMIN).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import common  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def private_kib_by_mapping(pid: int) -> collections.Counter:
    """Private KiB of one process per mapping (file name, ``[heap]``, ``[anon]``...)."""
    found: collections.Counter = collections.Counter()
    name = "[anon]"
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
                name = Path(head[5]).name if len(head) > 5 else "[anon]"
            elif head[0] in ("Private_Clean:", "Private_Dirty:"):
                found[name] += int(head[1])
    return found


def mappings(url: str, n: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
        config.write(f"{common.QUEUE}: {n}\n")
    cmd = [common.PYTHON, "manage.py", "resque_pool", "--no-pidfile", "--no-scheduler"]
    pool = common.launch([*cmd, "-c", config.name], common.env_for(url))
    client = redis.Redis.from_url(url)
    try:
        common.wait_for(
            lambda: client.scard(f"{common.NAMESPACE}:workers") >= n, 60, "workers"
        )
        time.sleep(1)
        workers = common.children(pool.pid)
        total: collections.Counter = collections.Counter()
        for pid in workers:
            total.update(private_kib_by_mapping(pid))
        print(f"private memory per idle worker, {len(workers)} workers, by mapping:")
        for name, kib in total.most_common(6):
            print(f"  {name:34s} {kib / len(workers):7.0f} KiB")
        print(f"  {'all':34s} {sum(total.values()) / len(workers):7.0f} KiB")
    finally:
        common.stop(pool, 3)
        os.unlink(config.name)


def _load_django_as_the_manager_does(url: str) -> None:
    os.environ.update(common.env_for(url))
    import django

    django.setup()
    from resque_pool.management.commands import resque_pool  # noqa: F401
    from resque_pool.pool import spawn  # noqa: F401


def _exclusive_pages(pid: int) -> set[int]:
    """Page numbers of ``pid``'s writable memory that only it maps (copied, or its own)."""
    pages = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1]:
                continue
            low, high = (int(part, 16) for part in fields[0].split("-"))
            pagemap.seek(low // PAGE * 8)
            entries = pagemap.read((high - low) // PAGE * 8)
            for index in range(len(entries) // 8):
                (entry,) = struct.unpack_from("<Q", entries, index * 8)
                present, exclusive = entry >> 63 & 1, entry >> 56 & 1
                if present and exclusive:
                    pages.add(low // PAGE + index)
    return pages


def objects(url: str) -> None:
    _load_django_as_the_manager_does(url)
    from resque_pool.pool import spawn
    from resque_pool.resque.connection import get_redis

    get_redis().ping()  # the manager publishes its state before it forks
    spawn.prepare_to_fork()
    entry, failure = spawn.worker_entry([common.QUEUE], os.getpid())
    pid = spawn.fork_child(entry, False, [], [], failure=failure)
    client = redis.Redis.from_url(url)
    try:
        common.wait_for(lambda: client.scard(f"{common.NAMESPACE}:workers") >= 1, 60, "worker")
        time.sleep(1)
        private = _exclusive_pages(pid)
    finally:
        os.kill(pid, 3)
        os.waitpid(pid, 0)
    gc.unfreeze()
    by_type: collections.Counter = collections.Counter()
    by_module: collections.Counter = collections.Counter()
    seen: set[int] = set()
    for obj in gc.get_objects():
        page = id(obj) // PAGE
        if page in private and page not in seen:
            seen.add(page)
            by_type[type(obj).__name__] += 1
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                by_module[module.partition(".")[0]] += 1
    print(f"pages the worker no longer shares: {len(private)} ({len(private) * PAGE >> 10} KiB)")
    print(f"  of which hold an object tracked by the collector: {len(seen)}")
    print("  by the type of the first such object on the page:")
    for name, count in by_type.most_common(10):
        print(f"    {name:28s} {count:5d}")
    print("  functions and classes on them, by top-level package:")
    for name, count in by_module.most_common(8):
        print(f"    {name:28s} {count:5d}")


def _usage(who: int) -> tuple[float, int]:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def faults(url: str, jobs: int) -> None:
    from bench import systems

    client = redis.Redis.from_url(url)
    env = common.env_for(url, FORK_PER_JOB="true")
    cmd = [common.PYTHON, "manage.py", "resque_work", "--queues", common.QUEUE]
    worker = common.launch(cmd, env)
    ours = systems.Ours()
    try:
        common.wait_for(lambda: client.scard(f"{common.NAMESPACE}:workers") >= 1, 60, "worker")
        ours.stage(client, jobs)
        before = common.proc_stat(worker.pid)
        base = int(client.get(f"{common.NAMESPACE}:stat:processed") or 0)
        ours.release(client)
        common.wait_for(
            lambda: int(client.get(f"{common.NAMESPACE}:stat:processed") or 0) - base >= jobs,
            600,
            "the drain",
        )
        after = common.proc_stat(worker.pid)
    finally:
        common.stop(worker, 3)
    delta = {key: after[key] - before[key] for key in before}
    tick = 1000 / os.sysconf("SC_CLK_TCK") / jobs
    print(f"per forked job, {jobs} no-op jobs, one worker:")
    print(
        f"  worker   {(delta['utime'] + delta['stime']) * tick:5.2f} ms CPU "
        f"{delta['minflt'] / jobs:6.0f} faults"
    )
    print(
        f"  children {(delta['cutime'] + delta['cstime']) * tick:5.2f} ms CPU "
        f"{delta['cminflt'] / jobs:6.0f} faults"
    )
    _load_django_as_the_manager_does(url)
    gc.freeze()
    parent, children = _usage(resource.RUSAGE_SELF), _usage(resource.RUSAGE_CHILDREN)
    for _ in range(jobs):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    parent_after, children_after = _usage(resource.RUSAGE_SELF), _usage(resource.RUSAGE_CHILDREN)
    print("the fork floor (fork, _exit, waitpid in a Django-loaded process):")
    for label, (cpu0, faults0), (cpu1, faults1) in (
        ("parent", parent, parent_after),
        ("children", children, children_after),
    ):
        cpu, count = (cpu1 - cpu0) * 1000 / jobs, (faults1 - faults0) / jobs
        print(f"  {label:8s} {cpu:5.2f} ms CPU {count:6.0f} faults")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="workers for the mappings report")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs for the faults report")
    parser.add_argument(
        "--report", choices=["mappings", "objects", "faults", "all"], default="all"
    )
    args = parser.parse_args()
    server = common.start_redis()
    try:
        if args.report in ("mappings", "all"):
            mappings(server.url, args.n)
        if args.report in ("faults", "all"):
            faults(server.url, args.jobs)
        if args.report in ("objects", "all"):
            objects(server.url)  # last: it loads Django into this process
    finally:
        common.cleanup()
        server.stop()


if __name__ == "__main__":
    main()
