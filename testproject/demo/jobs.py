"""The demo jobs the README and the acceptance checks use."""

import time

from resque_pool import job
from resque_pool.resque.connection import get_redis, key


@job(queue="demo", name="Noop")
class Noop:
    @staticmethod
    def perform(*args):
        """Does nothing."""


@job(queue="demo", name="Sleep")
class Sleep:
    @staticmethod
    def perform(seconds=1):
        time.sleep(float(seconds))


@job(queue="demo", name="Fail")
class Fail:
    @staticmethod
    def perform(message="failed on purpose"):
        raise RuntimeError(message)


@job(queue="demo", name="Record")
class Record:
    @staticmethod
    def perform(token):
        get_redis().sadd(key("demo", "done"), str(token))
