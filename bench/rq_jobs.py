"""The job rq's workers run in the benchmarks: the same no-op as the demo's ``Noop``."""


def noop(*args):
    return None
