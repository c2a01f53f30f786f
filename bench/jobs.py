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


@job(queue="bench", name="BenchSleep")
class BenchSleep:
    @staticmethod
    def perform(token, seconds):
        """The autoscale figure's burst job (``bench/burst.py``)."""
        sleep_and_record(token, seconds)
