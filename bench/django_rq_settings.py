"""The demo project's settings plus django-rq, for comparing against ``rqworker-pool``."""

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS, RESQUE_REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
RQ_QUEUES = {"bench": {"URL": RESQUE_REDIS_URL}}
