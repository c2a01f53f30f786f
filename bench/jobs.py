"""The jobs our workers run in the benchmarks (autodiscovered: ``bench`` is an app in
``bench.settings``)."""

from bench.burst import sleep_and_record
from bench.stamp import record_latency
from resque_pool import job


@job(queue="bench", name="BenchNoop")
class BenchNoop:
    @staticmethod
    def perform(*args):
        """Does nothing: the benchmarks measure everything around it."""


@job(queue="bench", name="BenchStamp")
class BenchStamp:
    @staticmethod
    def perform(enqueued_at):
        record_latency(enqueued_at)


@job(queue="memory", name="BenchAllocate")
class BenchAllocate:
    @staticmethod
    def perform(token, megabytes, seconds):
        """Takes ``megabytes`` of memory (every page touched) for ``seconds``, then records
        ``token`` as done: the memory-hungry job of bench/memory_budget.py."""
        import time

        from resque_pool.resque.connection import get_redis, key

        block = bytearray(int(megabytes) * 2**20)
        block[::4096] = b"\1" * len(range(0, len(block), 4096))
        time.sleep(float(seconds))
        del block
        get_redis().sadd(key("memory", "done"), str(token))


@job(queue="bench", name="BenchSleep")
class BenchSleep:
    @staticmethod
    def perform(token, seconds):
        """The autoscale figure's burst job (``bench/burst.py``)."""
        sleep_and_record(token, seconds)
