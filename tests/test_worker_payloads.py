"""Nothing on a queue can kill a worker: whatever the bytes, the job ends as a failure entry
(its raw payload kept, readable) or runs, and the worker takes the next job."""

from __future__ import annotations

import json

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resque_pool.resque import wire
from resque_pool.worker.loop import Worker

SENTINEL = wire.job_payload("Record", ["after"])

POISON = [
    '{"class":"Noop","args":[1e999]}',
    '{"class":"Noop","args":[-1e999]}',
    '{"class":"Noop","args":[NaN]}',
    '{"class":"Noop","args":[Infinity]}',
    '{"class":"Noop","args":["\\ud800"]}',  # valid JSON: the job runs
    '{"class":"\\udfff","args":[]}',
    '{"class":"Noop","args":[' + "[" * 10_000 + "]" * 10_000 + "]}",
    "[" * 10_000 + "]" * 10_000,
    '{"class":"Noop","args":[' + "9" * 5000 + "]}",
    '{"class":"os.system","args":["touch /tmp/pwned"]}',
    '{"class":"Record","args":["a","b","c"]}',
    '{"class":"Record","args":{"token":1}}',
    '{"class":["Record"],"args":[]}',
    "null",
    "",
]


def raw_client(resque) -> redis.Redis:
    return redis.Redis.from_url(resque.url)


def run_one(resque, payload: str | bytes, fork_per_job: bool = False) -> list[bytes]:
    """Push ``payload`` then a sentinel job, drain with a worker in this process; return the
    failure entries (raw bytes), after checking the worker went on and left nothing."""
    client = raw_client(resque)
    try:
        client.sadd(resque.key("queues"), "demo")
        client.rpush(resque.key("queue", "demo"), payload, SENTINEL)
        worker = Worker("demo", interval=0, fork_per_job=fork_per_job)
        worker.work()
        assert client.smembers(resque.key("demo", "done")) == {b"after"}
        assert client.llen(resque.key("queue", "demo")) == 0
        assert client.get(resque.key("stat", "processed")) == b"2"
        leftover = [k for k in client.keys(resque.key("*")) if worker.id.encode() in k]
        assert leftover == []
        entries = client.lrange(resque.key("failed"), 0, -1)
        client.delete(*client.keys(resque.key("*")))
        return entries
    finally:
        client.close()


def check_failure(entry_raw: bytes, payload: str | bytes) -> dict:
    # Bytes that were not UTF-8 are written back as they came (wire.dumps keeps them).
    text = entry_raw.decode("utf-8", "surrogateescape")
    entry = json.loads(text)
    assert entry["exception"].startswith("resque_pool.errors.")
    assert entry["error"]
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogateescape")
    if isinstance(entry["payload"], str) and entry["payload"] != "":
        # Not JSON: kept whole as a string; its bytes come back through surrogateescape.
        assert entry["payload"].encode("utf-8", "surrogateescape") == raw
    else:
        assert raw in entry_raw  # JSON: its own bytes, spliced in
    return entry


@pytest.mark.parametrize("payload", POISON, ids=lambda p: p[:40])
@pytest.mark.parametrize("fork_per_job", [False, True], ids=["in-process", "fork"])
def test_poison_payload_is_a_failure_and_the_worker_goes_on(resque, payload, fork_per_job):
    entries = run_one(resque, payload, fork_per_job)
    if "ud800" in payload:
        assert entries == []
        return
    [entry] = entries
    failure = check_failure(entry, payload)
    assert failure["queue"] == "demo"


def test_the_error_says_what_is_wrong(resque):
    reasons = {
        '{"class":"Noop","args":[1e999]}': "out of range",
        '{"class":"Noop","args":[NaN]}': "NaN is not a JSON number",
        "[" * 10_000 + "]" * 10_000: "nested too deeply",
        '{"class":"os.system","args":[]}': "no job is registered as 'os.system'",
    }
    for payload, reason in reasons.items():
        [entry] = run_one(resque, payload)
        assert reason in json.loads(entry)["error"], json.loads(entry)["error"]


hostile = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100),
    st.builds(
        lambda cls, args: json.dumps({"class": cls, "args": args}),
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["os.system", "Noop", "", "resque_pool.worker.loop.Worker"]),
        ),
        st.lists(
            st.one_of(
                st.floats(),
                st.integers(),
                st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
                st.none(),
            ),
            max_size=5,
        ),
    ),
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(900, 20_000)),
    st.builds(
        lambda args: '{"class":"Noop","args":' + args + "}",
        st.sampled_from(['"x"', "{}", "1e400", "-Infinity", "[1,]", "[\x00]", "[true"]),
    ),
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile)
def test_hostile_payloads_never_stop_the_worker(resque, payload):
    entries = run_one(resque, payload)
    assert len(entries) <= 1  # a Noop with harmless args just runs
    for entry in entries:
        check_failure(entry, payload)
