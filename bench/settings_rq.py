"""``bench/settings.py`` with django-rq installed: the settings of django-rq's pool (its
``rqworker-pool`` command lives in the ``django_rq`` app)."""

from bench.settings import *  # noqa: F403
from bench.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
