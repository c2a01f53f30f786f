"""System checks for the settings django-resque-pool reads."""

from __future__ import annotations

from django.core import checks
from django.utils.module_loading import import_string

from resque_pool.conf import settings


@checks.register()
def check_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    url = settings.RESQUE_REDIS_URL
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        errors.append(
            checks.Error(
                f"RESQUE_REDIS_URL must be a redis://, rediss:// or unix:// URL, not {url!r}.",
                id="resque_pool.E001",
            )
        )
    namespace = settings.RESQUE_NAMESPACE
    if not isinstance(namespace, str) or not namespace:
        errors.append(
            checks.Error("RESQUE_NAMESPACE must be a non-empty string.", id="resque_pool.E002")
        )
    loader = settings.RESQUE_POOL_CONFIG_LOADER
    if loader:
        try:
            import_string(loader)
        except ImportError as error:
            errors.append(
                checks.Error(
                    f"RESQUE_POOL_CONFIG_LOADER {loader!r} cannot be imported: {error}",
                    id="resque_pool.E003",
                )
            )
    period = settings.RESQUE_POOL_LOADER_PERIOD
    if not isinstance(period, int | float) or period <= 0:
        errors.append(
            checks.Error(
                "RESQUE_POOL_LOADER_PERIOD must be a positive number of seconds.",
                id="resque_pool.E004",
            )
        )
    return errors
