"""The jobs rq's workers run in the benchmarks: the same no-op and latency stamp as ours."""

from bench.stamp import record_latency


def noop(*args):
    return None


def stamp(enqueued_at):
    record_latency(enqueued_at)
