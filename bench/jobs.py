"""The jobs our workers run in the benchmarks (autodiscovered: ``bench`` is an app in
``bench.settings``)."""

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
