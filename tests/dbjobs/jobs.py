"""A job that queries the database from a forked job child."""

from resque_pool import job
from resque_pool.models import WorkerCount
from resque_pool.resque.connection import get_redis, key


@job(queue="dbjobs", name="CountRows")
class CountRows:
    @staticmethod
    def perform(token):
        rows = WorkerCount.objects.count()
        get_redis().sadd(key("dbjobs", "done"), f"{token}:{rows}")
