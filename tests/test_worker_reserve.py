"""Taking a job is one server-side step: the payload's bytes move from the queue to
``worker:<id>`` untouched, in Resque's exact format, with the pause check in the same step;
payloads that are not JSON objects get a placeholder there and keep their bytes in ours."""

from __future__ import annotations

import json

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resque_pool.resque import connection, reserve, wire
from resque_pool.resque.reserve import read_in_flight

WORKER = "host:1:high,low"
RUN_AT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

VALID = [
    wire.job_payload("Archive", [44]),
    wire.job_payload("Archive", ['é/ü "quoted" \\ \u2028', None, True, {"b": 1, "a": [2.5]}]),
    wire.job_payload("Archive", [1e20, -0.0, 12345678901234567890123, "\u00e9"]),
    '{"class":"Archive","args":[1.0e+20],"queue":"x","id":"abc"}',  # Ruby's float, extra keys
    '{"args": [3], "class": "Archive"}',  # pyres-style spacing and key order
    '{"class":"Archive","args":[1e999]}',  # valid JSON; Python could not write it back
    '{"class":"Archive","args":["\\ud800"]}',  # a lone surrogate escape is valid JSON
]
NOT_OBJECTS = [
    "not json {",
    "[1,2]",
    '"just a string"',
    '{"class":"Archive","args":[NaN]}',
    '{"class":"Archive","args":[01]}',
    '{"class":"Archive","args":[1,]}',
    '{"class":"Archive"} trailing',
    '{"class":"Archive","args":["tab\tinside"]}',
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 65 + "1" + "}" * 65,  # deeper than anything Ruby would parse back
    "",
]


def canonical(raw: str) -> str | None:
    try:
        return wire.dumps(json.loads(raw))
    except ValueError:  # 1e999 decodes to inf, which JSON cannot hold
        return None


def record_of(resque) -> str:
    return resque.client.get(resque.key("worker", WORKER))


def finished(client) -> None:
    """What done_working does to the in-flight record."""
    client.delete(connection.key("worker", WORKER), connection.key("worker-raw", WORKER))


def push(resque, queue: str, raw: str | bytes) -> None:
    raw_client = redis.Redis.from_url(resque.url)
    raw_client.rpush(resque.key("queue", queue), raw)
    raw_client.close()


@pytest.mark.parametrize("raw", VALID)
def test_payload_bytes_are_spliced_into_resques_exact_record(resque, raw):
    push(resque, "high", raw)
    got = reserve.reserve(WORKER, ["high"])
    assert got == reserve.Reservation(queue="high", raw=raw, spliced=True)
    record = record_of(resque)
    run_at = json.loads(record)["run_at"]
    assert record == f'{{"queue":"high","run_at":"{run_at}","payload":{raw}}}'
    assert resque.client.llen(resque.key("queue", "high")) == 0
    assert not resque.client.exists(reserve.raw_key(WORKER))
    if raw == canonical(raw):
        # Exactly what Resque's working_on (and ours before) wrote from the decoded payload.
        data = {"queue": "high", "run_at": run_at, "payload": json.loads(raw)}
        assert record == wire.dumps(data)
    in_flight = read_in_flight(WORKER)
    assert (in_flight.queue, in_flight.raw) == ("high", raw)


@pytest.mark.parametrize("raw", NOT_OBJECTS, ids=lambda raw: raw[:30])
def test_anything_else_gets_a_placeholder_and_keeps_its_bytes(resque, raw):
    push(resque, "high", raw)
    got = reserve.reserve(WORKER, ["high"])
    assert got == reserve.Reservation(queue="high", raw=raw, spliced=False)
    record = json.loads(record_of(resque))
    assert list(record) == ["queue", "run_at", "payload"]
    assert record["payload"] == {"class": reserve.PLACEHOLDER_CLASS, "args": []}
    assert resque.client.get(reserve.raw_key(WORKER)) == raw
    assert read_in_flight(WORKER).raw == raw


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe not utf-8", b'{"class":"Archive","args":["\xc3\x28"]}', bytes(range(256))],
)
def test_bytes_that_are_not_utf8_are_kept_exactly(resque, raw):
    push(resque, "high", raw)
    got = reserve.reserve(WORKER, ["high"])
    assert got.spliced is False
    assert got.raw.encode("utf-8", "surrogateescape") == raw
    raw_client = redis.Redis.from_url(resque.url)
    assert raw_client.get(resque.key("worker-raw", WORKER)) == raw
    json.loads(raw_client.get(resque.key("worker", WORKER)).decode("utf-8"))  # valid JSON


def test_queues_in_priority_order_and_queue_names_escaped(resque):
    push(resque, 'lo"w', wire.job_payload("A", [1]))
    push(resque, "high", wire.job_payload("B", [2]))
    assert reserve.reserve(WORKER, ["high", 'lo"w']).queue == "high"
    finished(resque.client)
    assert reserve.reserve(WORKER, ["high", 'lo"w']).queue == 'lo"w'
    assert json.loads(record_of(resque))["queue"] == 'lo"w'
    finished(resque.client)
    assert reserve.reserve(WORKER, ["high", 'lo"w']) is None


@pytest.mark.parametrize("value", ["true", " TRUE\n", "True"])
def test_pause_all_workers_is_checked_in_the_same_step(resque, value):
    push(resque, "high", wire.job_payload("A", [1]))
    resque.client.set(resque.key("pause-all-workers"), value)
    assert reserve.reserve(WORKER, ["high"]) == reserve.PAUSED
    assert resque.client.llen(resque.key("queue", "high")) == 1
    resque.client.set(resque.key("pause-all-workers"), "false")
    assert reserve.reserve(WORKER, ["high"]).queue == "high"


def test_the_script_is_loaded_once_and_again_after_a_flush(resque):
    push(resque, "high", wire.job_payload("A", [1]))
    push(resque, "high", wire.job_payload("A", [2]))
    reserve.reserve(WORKER, ["high"])
    finished(resque.client)
    resque.client.script_flush()  # as after a restart or a failover
    assert reserve.reserve(WORKER, ["high"]).raw == wire.job_payload("A", [2])


def test_fakeredis_runs_the_same_script(monkeypatch):
    """The fallback when no redis-server binary exists: fakeredis with its lua extra."""
    fake = fakeredis.FakeRedis(decode_responses=True, encoding_errors="surrogateescape")
    monkeypatch.setattr(reserve, "get_redis", lambda: fake)
    fake.rpush(connection.key("queue", "q"), VALID[1], "[1]")
    got = reserve.reserve(WORKER, ["q"])
    assert got.spliced and fake.get(connection.key("worker", WORKER)).endswith(VALID[1] + "}")
    finished(fake)
    assert reserve.reserve(WORKER, ["q"]).spliced is False


json_text = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
).map(wire.dumps)
mangled = st.tuples(json_text, st.integers(0, 40), st.sampled_from(["", "x", ",", "]", "{", '"']))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        json_text,
        json_text.map(lambda text: '{"class":"X","args":[' + text + "]}"),
        mangled.map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]),
        st.text(max_size=30),
    )
)
def test_lua_and_python_agree_on_what_can_be_spliced(resque, raw):
    finished(resque.client)
    push(resque, "h", raw)
    got = reserve.reserve(WORKER, ["h"])
    assert got.raw == raw
    assert got.spliced == wire.splicable(raw, require_object=True)
    if got.spliced:
        json.loads(record_of(resque))


@pytest.mark.parametrize("raw", [VALID[0], VALID[3], "not json {"], ids=["ours", "ruby", "garbage"])
def test_a_job_whose_reservation_reply_was_lost_is_handed_out_again(resque, raw):
    """Redis ran the script but the reply never arrived (a reset connection, a client
    time-out): the next reservation returns that job instead of overwriting its record."""
    push(resque, "high", raw)
    push(resque, "high", wire.job_payload("Next", [1]))
    first = reserve.reserve(WORKER, ["high"])
    record = record_of(resque)
    again = reserve.reserve(WORKER, ["high"])  # as if ``first`` had been lost on the wire
    assert again == first
    assert record_of(resque) == record
    assert resque.client.llen(resque.key("queue", "high")) == 1  # "Next" still queued
