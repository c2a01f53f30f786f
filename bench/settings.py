"""The demo project's settings for the benchmarks: the bench jobs, and django-rq when the
``bench`` extra installed it."""

import importlib.util
import os

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS, RESQUE_REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
if importlib.util.find_spec("django_rq"):
    INSTALLED_APPS.append("django_rq")
RQ_QUEUES = {"bench": {"URL": RESQUE_REDIS_URL}}
# The reconfiguration figure measures how fast the pool follows a WorkerCount change; the
# loader period is the default unless the harness says otherwise.
RESQUE_POOL_LOADER_PERIOD = float(os.environ.get("BENCH_LOADER_PERIOD", "1.0"))
