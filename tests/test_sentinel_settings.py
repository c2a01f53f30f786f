"""Sentinel settings: what the client built from them keeps of the URL, and the one-line
errors for bad values. (The failover itself: tests/test_redis_failover.py.)"""

from __future__ import annotations

import os

import pytest

from resque_pool.resque import connection


@pytest.fixture
def sentinel_settings(settings):
    settings.RESQUE_REDIS_SENTINELS = ["127.0.0.1:26379", "[::1]:26380"]
    settings.RESQUE_REDIS_SENTINEL_SERVICE = "mymaster"
    connection.reset_connections()
    yield settings
    connection.reset_connections()


def test_the_url_gives_password_db_and_tls_the_sentinels_the_address(sentinel_settings):
    sentinel_settings.RESQUE_REDIS_URL = "rediss://app:s3cret@ignored.example:1/3"
    sentinel_settings.RESQUE_REDIS_SENTINEL_PASSWORD = "sentinel-pw"
    pool = connection.get_redis().connection_pool
    options = pool.connection_kwargs
    assert (options["username"], options["password"], options["db"]) == ("app", "s3cret", 3)
    assert "host" not in options and "port" not in options  # the sentinels name the master
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    assert pool.service_name == "mymaster"
    sentinels = pool.sentinel_manager.sentinels
    assert [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in sentinels
    ] == [("127.0.0.1", 26379), ("::1", 26380)]
    assert {s.connection_pool.connection_kwargs["password"] for s in sentinels} == {"sentinel-pw"}
    assert "Redis service 'mymaster'" in connection.describe_redis()


def test_without_sentinels_the_url_alone_decides(settings):
    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:6399/2"
    connection.reset_connections()
    options = connection.get_redis().connection_pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("127.0.0.1", 6399, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "RESQUE_REDIS_SENTINELS": "127.0.0.1:26379,nohost",
                "RESQUE_REDIS_SENTINEL_SERVICE": "m",
            },
            "(resque_pool.E007) RESQUE_REDIS_SENTINELS: 'nohost' is not host:port.",
        ),
        (
            {"RESQUE_REDIS_SENTINELS": "127.0.0.1:99999", "RESQUE_REDIS_SENTINEL_SERVICE": "m"},
            "(resque_pool.E007) RESQUE_REDIS_SENTINELS: '127.0.0.1:99999' is not host:port.",
        ),
        (
            {"RESQUE_REDIS_SENTINELS": "127.0.0.1:26379"},
            "(resque_pool.E007) RESQUE_REDIS_SENTINELS is set but RESQUE_REDIS_SENTINEL_SERVICE",
        ),
        (
            {
                "RESQUE_REDIS_SENTINELS": "127.0.0.1:26379",
                "RESQUE_REDIS_SENTINEL_SERVICE": "m",
                "RESQUE_REDIS_URL": "unix:///run/redis.sock",
            },
            "(resque_pool.E007) RESQUE_REDIS_SENTINELS needs a redis:// or rediss://",
        ),
    ],
    ids=["not-host-port", "bad-port", "no-service", "unix-url"],
)
def test_bad_sentinel_settings_stop_the_commands_with_one_line(run_manage, env, message):
    result = run_manage("enqueue", "Noop", env=env)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_enqueue_reports_how_many_replicas_acknowledged(resque, settings):
    """WAIT with no replica: the job is pushed and the shortfall returned, not raised."""
    from resque_pool import enqueue

    if os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis":  # set by the session fixture
        pytest.skip("fakeredis has no WAIT")

    settings.RESQUE_ENQUEUE_WAIT_TIMEOUT = 0.05

    pushed = enqueue("Noop", wait_replicas=1)
    assert pushed.replicas == 0
    assert resque.client.llen(resque.key("queue", "demo")) == 1
    assert enqueue("Noop").replicas is None
