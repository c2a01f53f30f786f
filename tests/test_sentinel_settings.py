"""Sentinel settings: what the client built from them keeps of the URL, and the one-line
errors for bad values. (The failover itself: tests/test_redis_failover.py.)"""

from __future__ import annotations

import os
import subprocess

import pytest
import redis

from resque_pool.resque import connection
from tests.support.common import wait_until
from tests.support.redis_server import free_port
from tests.support.sentinel import missing_binaries


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
    sentinel_settings.RESQUE_REDIS_SENTINEL_USERNAME = "watcher"
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
    assert {
        (
            s.connection_pool.connection_kwargs["username"],
            s.connection_pool.connection_kwargs["password"],
        )
        for s in sentinels
    } == {("watcher", "sentinel-pw")}
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
                "RESQUE_REDIS_SENTINEL_USERNAME": "watcher",
            },
            "(resque_pool.E007) RESQUE_REDIS_SENTINEL_USERNAME is set but "
            "RESQUE_REDIS_SENTINEL_PASSWORD is not.",
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
    ids=["not-host-port", "bad-port", "no-service", "user-without-password", "unix-url"],
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


@pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or "")
def test_an_acl_user_finds_the_master_through_sentinels_that_require_it(
    tmp_path, settings, redis_server_url
):
    """A sentinel whose default user is off answers only its ACL user: with the user and
    its password the client finds the master; with the password alone it is refused."""
    port = free_port()
    master_port = int(redis_server_url.rsplit(":", 1)[1].split("/")[0])
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor acl-test 127.0.0.1 {master_port} 1\n"
        "user default off\n"
        "user watcher on >watch-pw +@all\n"
    )
    sentinel = subprocess.Popen(
        ["redis-sentinel", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        settings.RESQUE_REDIS_SENTINELS = [f"127.0.0.1:{port}"]
        settings.RESQUE_REDIS_SENTINEL_SERVICE = "acl-test"
        settings.RESQUE_REDIS_SENTINEL_PASSWORD = "watch-pw"
        settings.RESQUE_REDIS_SENTINEL_USERNAME = "watcher"
        connection.reset_connections()
        wait_until(lambda: _pings(), 10, 0.05, "the master through the ACL-protected sentinel")
        assert connection.get_redis().info("server")["tcp_port"] == master_port

        settings.RESQUE_REDIS_SENTINEL_USERNAME = None
        connection.reset_connections()
        with pytest.raises(redis.RedisError):
            connection.get_redis().ping()
    finally:
        connection.reset_connections()
        sentinel.kill()
        sentinel.wait(10)


def _pings() -> bool:
    try:
        return connection.get_redis().ping()
    except redis.RedisError:
        return False
