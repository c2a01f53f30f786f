"""Data other clients can write never breaks a dashboard page or its actions.

Entries are written as raw bytes (another client's view of Redis): class names and fields
that are not UTF-8, values that are not JSON, JSON with the wrong types, a 10,000-deep
nested job. Every page answers 200 and shows such a value as text (bytes that are not
UTF-8 as ``\\xff``), and the actions on the page still work.
"""

from __future__ import annotations

import re

import pytest
import redis as redis_lib
from django.contrib.admin.models import LogEntry

from tests.support.admin import csrf_post, url

pytestmark = pytest.mark.django_db

DEEP = b"[" * 10_000 + b"]" * 10_000
BAD_JOB = b'{"class":"Nope\xff","args":[1]}'
HOSTILE_JOBS = [
    BAD_JOB,
    b'{"class":"Deep","args":' + DEEP + b"}",
    DEEP,
    b"\xff\xfe not json",
    b'{"class":5,"args":"x"}',
    b'{"class":["A"],"args":{"a":1}}',
    b'{"class":"\\ud800","args":["lone surrogate escape"]}',
    b"null",
    b"42",
    b"",
]
BAD_FAILURE = (
    b'{"failed_at":"2026/11/22 08:59:40 UTC","payload":{"class":"Nope\xff","args":[1]},'
    b'"exception":"Err\xff","error":"boom\xff","backtrace":["f\xff.rb:1"],'
    b'"worker":"h\xff:1:q","queue":"q\xff"}'
)
HOSTILE_FAILURES = [
    BAD_FAILURE,
    b'{"failed_at":5,"payload":' + DEEP + b',"exception":{},"error":[],"backtrace":7,'
    b'"worker":3,"queue":9,"retried_at":{}}',
    b'{"payload":{"class":"Deep","args":' + DEEP + b'},"queue":"q"}',
    DEEP,
    b"\xff not json",
    b'{"payload":{"class":{"x":1},"args":null},"queue":[],"worker":["a"],"failed_at":[1]}',
    b'["not","an","object"]',
    b'{"payload":{"class":"\\udfff","args":[]},"queue":"q","error":"\\ud83d"}',
    b'{"payload":{"class":"Fine","args":[1]},"queue":"fine","worker":"h:1:fine"}',
]
BAD_WORKER = b"host\xff:77:q\xff"


@pytest.fixture
def raw(resque):
    client = redis_lib.Redis.from_url(resque.url)
    yield client
    # Drop them here: the suite's own clean-up reads key names as text.
    keys = list(client.scan_iter(match=resque.key("*").encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def fill_with_hostile_data(resque, raw) -> None:
    k = resque.key
    raw.sadd(k("queues"), b"hostile", b"q\xff")
    raw.rpush(k("queue", "hostile"), *[job for job in HOSTILE_JOBS if job])
    raw.rpush(k("queue").encode() + b":q\xff", BAD_JOB)
    raw.rpush(k("failed"), *HOSTILE_FAILURES)
    workers = {
        b"good:1:hostile": BAD_JOB,
        b"good:2:hostile": b'{"queue":"hostile","run_at":"2026-11-22T07:59:40Z","payload":'
        + DEEP
        + b"}",
        b"good:3:hostile": b'{"queue":["x"],"run_at":5,"payload":{"class":"Nope\xff"}}',
        b"good:4:hostile": b"\xff not json",
        BAD_WORKER: b'{"queue":"q\xff","run_at":"\xff","payload":' + BAD_JOB + b"}",
    }
    for worker_id, job in workers.items():
        raw.sadd(k("workers"), worker_id)
        raw.set(k("worker").encode() + b":" + worker_id, job)
        raw.set(k("worker").encode() + b":" + worker_id + b":started", b"\xff" + DEEP[:50])
        raw.hset(k("workers:heartbeat"), worker_id, b"2026-11-22\xff")
        raw.set(k("stat", "processed").encode() + b":" + worker_id, b"\xff")
    raw.sadd(k("pools"), b"h\xff:1", b"deep:2")
    raw.set(
        k("pool").encode() + b":h\xff:1",
        b'{"id":"h\xff:1","host":"h\xff","pid":1,"appname":"a\xff","pool":"p\xff",'
        b'"counts":{"q\xff":2},"workers":{"q\xff":[1,"x"]},"started":"\xff"}',
    )
    raw.set(k("pool").encode() + b":deep:2", DEEP)
    raw.set(k("odd").encode() + b"\xff", BAD_JOB)
    raw.hset(k("odd-hash"), b"f\xff", DEEP)


def body_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode("utf-8")


def links_to(body: str, prefix: str) -> list[str]:
    return sorted(set(re.findall(r'href="(' + re.escape(prefix) + r'[^"?]+)"', body)))


def test_every_page_shows_hostile_data_as_text(viewer, resque, raw):
    fill_with_hostile_data(resque, raw)
    overview = body_of(viewer.get(url("changelist")))
    assert "Nope\\xff" in overview and "host\\xff" in overview
    body_of(viewer.get(url("poll")))
    queues = body_of(viewer.get(url("queues")))
    assert "q\\xff" in queues
    queue = body_of(viewer.get(url("queue", "hostile")))
    assert "Nope\\xff" in queue and "not json" in queue and "[[[[" in queue
    for link in links_to(queues, url("queues")):
        body_of(viewer.get(link))
    failed = body_of(viewer.get(url("failed")))
    for text in ("Nope\\xff", "Err\\xff", "boom\\xff", "f\\xff.rb:1", "q\\xff", "[[[["):
        assert text in failed, text
    workers = body_of(viewer.get(url("workers") + "?all=1"))
    assert "Nope\\xff" in workers and "host\\xff" in workers
    worker_links = links_to(workers, url("workers"))
    assert len(worker_links) == 5, worker_links
    for link in worker_links:
        shown = body_of(viewer.get(link))
        assert any(text in shown for text in ("Nope\\xff", "not json", "[[[[")), link
    body_of(viewer.get(url("stats")))
    keys = body_of(viewer.get(url("keys")))
    key_links = links_to(keys, url("keys"))
    assert any("odd" in link for link in key_links), key_links
    for link in key_links:
        body_of(viewer.get(link))
    assert "Nope\\xff" in body_of(viewer.get(url("key", "odd%FF")))


def test_failed_filter_and_actions_work_next_to_hostile_entries(operator, resque, raw):
    fill_with_hostile_data(resque, raw)
    failed = body_of(operator.get(url("failed")))
    filter_link = re.search(r'href="(\?class=Nope[^"]*)"', failed).group(1)
    filtered = operator.get(url("failed") + filter_link.replace("&amp;", "&"))
    assert filtered.context["total"] == 1 and "Nope\\xff" in body_of(filtered)
    bad = filtered.context["rows"][0]
    assert bad["index"] == 0
    response = csrf_post(
        operator, url("failed_retry"), {"index": 0, "digest": bad["digest"]}, page=url("failed")
    )
    assert response.status_code == 302
    # The job goes back byte for byte to the queue the entry names.
    assert raw.lrange(resque.key("queue").encode() + b":q\xff", 0, -1)[-1] == BAD_JOB
    assert "Nope\\xff" in LogEntry.objects.get().change_message
    confirm = operator.get(url("failed_remove") + f"?index=0&digest={_digest_at(operator, 0)}")
    assert "Nope\\xff" in body_of(confirm)
    csrf_post(operator, url("failed_remove"), {"index": 0, "digest": _digest_at(operator, 0)})
    assert raw.lindex(resque.key("failed"), 0) == HOSTILE_FAILURES[1]
    # The ordinary entry at the end of the list is still retried by its own button.
    fine = next(r for r in operator.get(url("failed")).context["rows"] if r["class"] == "Fine")
    csrf_post(operator, url("failed_retry"), {"index": fine["index"], "digest": fine["digest"]})
    assert raw.llen(resque.key("queue", "fine")) == 1
    # A class from a JSON escape that no byte stands for is retried with the same escape.
    odd = next(r for r in operator.get(url("failed")).context["rows"] if r["class"] == "\udfff")
    response = csrf_post(
        operator, url("failed_retry"), {"index": odd["index"], "digest": odd["digest"]}
    )
    assert response.status_code == 302
    assert raw.lrange(resque.key("queue", "q"), 0, -1)[-1] == b'{"class":"\\udfff","args":[]}'
    # The unreadable ones can still be removed.
    for row in operator.get(url("failed")).context["rows"]:
        if row["class"] != "Fine":
            csrf_post(
                operator, url("failed_remove"), {"index": row["index"], "digest": row["digest"]}
            )
    assert body_of(operator.get(url("failed")))


def _digest_at(client, index: int) -> str:
    rows = client.get(url("failed")).context["rows"]
    return next(r["digest"] for r in rows if r["index"] == index)


def test_remove_hostile_queue_and_log_it(operator, resque, raw):
    fill_with_hostile_data(resque, raw)
    confirm = body_of(operator.get(url("remove_queue") + "?name=hostile"))
    assert "9 pending job" in confirm
    csrf_post(operator, url("remove_queue"), {"name": "hostile"})
    assert not raw.exists(resque.key("queue", "hostile"))
    assert "hostile" in LogEntry.objects.get().change_message


def test_a_queue_named_with_bytes_that_are_not_utf8_can_be_shown_and_removed(operator, resque, raw):
    fill_with_hostile_data(resque, raw)
    queues = body_of(operator.get(url("queues")))
    link = next(link for link in links_to(queues, url("queues")) if "%FF" in link)
    page = body_of(operator.get(link))
    assert "Nope\\xff" in page
    remove = re.search(r'href="([^"]*remove-queue/[^"]*)"', page).group(1).replace("&amp;", "&")
    confirm = body_of(operator.get(remove))
    assert "1 pending job" in confirm
    action = re.search(r'<form method="post" action="([^"]*)"', confirm).group(1)
    csrf_post(operator, action.replace("&amp;", "&"), page=url("queues"))
    assert not raw.exists(resque.key("queue").encode() + b":q\xff")
    assert raw.smembers(resque.key("queues")) == {b"hostile"}
