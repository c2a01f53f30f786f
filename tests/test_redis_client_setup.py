"""How our Redis client opens a connection: no CLIENT SETINFO.

redis-py sends ``CLIENT SETINFO LIB-NAME`` and ``LIB-VER`` on every new connection, and
finds its version with an importlib.metadata scan; every worker and every job child that
talks to Redis opens connections, so that is two round trips, about a millisecond and
(in a freshly forked worker) about 1.6 MiB of copied pages each (docs/benchmarks.md).
"""

from __future__ import annotations

import os

import pytest

from resque_pool.resque import connection


def _setinfo_traces(client) -> tuple[int, int]:
    """(CLIENT SETINFO calls, error replies) as the server counts them: Redis before 7.2
    answers SETINFO with an error, later versions run it."""
    stats = client.info("commandstats")
    calls = stats.get("cmdstat_client|setinfo", {})
    return calls.get("calls", 0) + calls.get("rejected_calls", 0), client.info("stats")[
        "total_error_replies"
    ]


def test_a_new_connection_sends_no_client_setinfo(resque):
    if os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis":
        pytest.skip("needs a real redis-server's command statistics")
    before = _setinfo_traces(resque.client)
    connection.reset_connections()
    client = connection.get_redis()
    client.ping()
    client.connection_pool.disconnect()
    assert _setinfo_traces(resque.client) == before
