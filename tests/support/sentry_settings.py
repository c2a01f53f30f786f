"""Pool settings with failure backends: a broken one, then Sentry through a transport that
writes to ``SENTRY_TEST_EVENTS`` (tests/test_failure_backends.py)."""

import sentry_sdk

from tests.support.pool_settings import *  # noqa: F403
from tests.support.sentry_backend import FileTransport

sentry_sdk.init(
    dsn="https://public@sentry.invalid/1",
    transport=FileTransport,
    default_integrations=False,
)

RESQUE_FAILURE_BACKENDS = [
    "resque_pool.failure_backends.RedisFailedList",
    "tests.support.sentry_backend.Broken",
    "tests.support.sentry_backend.Sentry",
]
