"""The demo project's settings for the benchmarks: the bench jobs. Every system runs this
project; django-rq's pool runs it with ``django_rq`` installed as well
(``bench/settings_rq.py``), as a project that uses django-rq has it and one that does not
has not."""

import os

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS, RESQUE_REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
RQ_QUEUES = {"bench": {"URL": RESQUE_REDIS_URL}}
# The reconfiguration figure measures how fast the pool follows a WorkerCount change; the
# loader period is the default unless the harness says otherwise.
RESQUE_POOL_LOADER_PERIOD = float(os.environ.get("BENCH_LOADER_PERIOD", "1.0"))
# The autoscale figure (bench/autoscale.py) sets the pool's look interval and cooldown;
# unset, the library's defaults.
if "BENCH_AUTOSCALE_INTERVAL" in os.environ:
    RESQUE_POOL_AUTOSCALE_INTERVAL = float(os.environ["BENCH_AUTOSCALE_INTERVAL"])
if "BENCH_AUTOSCALE_COOLDOWN" in os.environ:
    RESQUE_POOL_AUTOSCALE_COOLDOWN = float(os.environ["BENCH_AUTOSCALE_COOLDOWN"])
