"""Redis Cluster settings: the hash tag a namespace needs, what the client keeps of the URL,
the one-line errors for bad values, and which cluster replies are outages. (A real cluster:
tests/test_redis_cluster.py.)"""

from __future__ import annotations

import pytest
import redis
from redis._parsers.base import BaseParser
from redis.crc import key_slot

from resque_pool.resque import connection, outages
from resque_pool.resque.cluster import hash_tag


@pytest.mark.parametrize(
    ("namespace", "tag"),
    [
        ("{resque}", "resque"),
        ("app:{resque}", "resque"),
        ("{a}{b}", "a"),  # Redis hashes the first tag only
        ("resque", None),
        ("{}resque", None),  # an empty tag: Redis hashes the whole key
        ("res{que", None),  # the "}" would come from each key's own part
        ("res}{que", None),
    ],
)
def test_the_hash_tag_redis_computes(namespace, tag):
    assert hash_tag(namespace) == tag


def test_the_url_gives_credentials_tls_and_the_first_node(settings):
    settings.RESQUE_REDIS_CLUSTER = True
    settings.RESQUE_NAMESPACE = "{jobs}"
    settings.RESQUE_REDIS_URL = "rediss://app:s3cret@cfg.example:7000/0?socket_timeout=3"
    connection.reset_connections()
    try:
        pool = connection.get_redis().connection_pool  # no I/O until a command
        options = pool.connection_kwargs
        assert (options["username"], options["password"]) == ("app", "s3cret")
        assert (options["host"], options["port"], options["socket_timeout"]) == (
            "cfg.example",
            7000,
            3.0,
        )
        assert pool.connection_class.__name__ == "SlotSSLConnection"
        owner = options["slot_owner"]
        assert owner.startup == ("cfg.example", 7000)
        assert owner.slot == key_slot(b"jobs")
        described = connection.describe_redis()
        assert described.startswith("Redis Cluster at rediss://app:")
        assert "cfg.example:7000" in described and "s3cret" not in described
    finally:
        connection.reset_connections()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RESQUE_NAMESPACE": "resque"},
            "(resque_pool.E010) RESQUE_REDIS_CLUSTER needs a RESQUE_NAMESPACE with a hash tag "
            "such as '{resque}', not 'resque': its keys would spread over slots.",
        ),
        (
            {"RESQUE_NAMESPACE": "{}resque"},
            "(resque_pool.E010) RESQUE_REDIS_CLUSTER needs a RESQUE_NAMESPACE with a hash tag",
        ),
        (
            {
                "RESQUE_NAMESPACE": "{resque}",
                "RESQUE_REDIS_SENTINELS": "127.0.0.1:26379",
                "RESQUE_REDIS_SENTINEL_SERVICE": "m",
            },
            "(resque_pool.E010) RESQUE_REDIS_CLUSTER and RESQUE_REDIS_SENTINELS exclude each "
            "other.",
        ),
        (
            {"RESQUE_NAMESPACE": "{resque}", "RESQUE_REDIS_URL": "redis://127.0.0.1:7000/3"},
            "(resque_pool.E010) RESQUE_REDIS_CLUSTER: Redis Cluster has only database 0, not 3.",
        ),
        (
            {"RESQUE_NAMESPACE": "{resque}", "RESQUE_REDIS_URL": "unix:///run/redis.sock"},
            "(resque_pool.E010) RESQUE_REDIS_CLUSTER needs a redis:// or rediss://",
        ),
    ],
    ids=["no-tag", "empty-tag", "and-sentinel", "database-3", "unix-url"],
)
def test_bad_cluster_settings_stop_the_commands_with_one_line(run_manage, env, message):
    result = run_manage("enqueue", "Noop", env={"RESQUE_REDIS_CLUSTER": "true", **env})
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("CLUSTERDOWN The cluster is down", "CLUSTERDOWN"),
        ("CLUSTERDOWN Hash slot not served", "CLUSTERDOWN"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "TRYAGAIN"),
        ("ASK 8763 127.0.0.1:7001", "ASK"),
        # A MOVED that reaches a caller is for a key outside the namespace (the client
        # follows the namespace's own): no wait heals it.
        ("MOVED 12182 127.0.0.1:7002", None),
        ("CROSSSLOT Keys in request don't hash to the same slot", None),
    ],
)
def test_which_cluster_replies_are_outages(reply, kind):
    """The exceptions as redis-py builds them from the reply on the wire, and as an older
    redis-py's plain connection raises them (a ResponseError with the reply's text)."""
    assert outages.outage(BaseParser.parse_error(reply)) == kind
    assert outages.outage(redis.ResponseError(reply)) == kind
