"""Celery's side of the benchmarks: a Redis broker, the same no-op and latency stamp, and
signal handlers that make "registered", "children" and "done" visible in Redis.

    celery -A bench.celery_app worker --pool prefork -c N -Q bench
"""

import os

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_ready

from bench.burst import sleep_and_record
from bench.stamp import record_latency, stamp_client

READY_KEY = "celery-bench:ready"
CHILDREN_KEY = "celery-bench:children"
DONE_KEY = "celery-bench:done"

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue="bench",
)


@app.task(name="bench.noop")
def noop(*args):
    return None


@app.task(name="bench.stamp")
def stamp(enqueued_at):
    record_latency(enqueued_at)


@app.task(name="bench.sleep")
def sleep(token, seconds):
    sleep_and_record(token, seconds)


@worker_process_init.connect
def _child_started(**_kwargs):
    stamp_client().sadd(CHILDREN_KEY, os.getpid())


@worker_ready.connect
def _ready(**_kwargs):
    stamp_client().set(READY_KEY, os.getpid())


@task_postrun.connect
def _done(**_kwargs):
    # Celery keeps no per-task counter in Redis without a result backend; this one INCR per
    # task is the only command the benchmark adds to Celery's own.
    stamp_client().incr(DONE_KEY)
