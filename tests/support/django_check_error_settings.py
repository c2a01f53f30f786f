"""The demo project's settings with an error that only Django's own checks report (no
``default`` cache): ``manage.py check`` refuses them, while a pool, which runs only this
app's checks, starts."""

from testproject.settings import *  # noqa: F403

CACHES = {"other": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
