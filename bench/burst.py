"""What the autoscale figure's jobs do, in every system: sleep, then record the run.

No Django here: Celery's workers import it too. Each job carries a token and its duration
(the harness draws them once, so every system gets the same burst); a run adds one to its
token in a hash, so a job lost or run twice shows, and pushes the wall-clock second it
finished, so the drain ends at the last job's own clock rather than at a sample."""

import time

from bench.stamp import stamp_client

RUNS_KEY = "autoscale-bench:runs"
FINISHED_KEY = "autoscale-bench:finished"


def sleep_and_record(token: str, seconds: float) -> None:
    time.sleep(float(seconds))
    pipe = stamp_client().pipeline(transaction=False)
    pipe.hincrby(RUNS_KEY, token, 1)
    pipe.rpush(FINISHED_KEY, repr(time.time()))
    pipe.execute()
