"""WorkerCount: queue-list validation and the layered merge by environment and pool."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from resque_pool.models import WorkerCount
from resque_pool.resque.queue_lists import normalize_queue_list, split_queues


@pytest.mark.parametrize(
    ("text", "normal"),
    [("high", "high"), (" high , low ", "high,low"), ("critical,*,!file_*", "critical,*,!file_*")],
)
def test_queue_lists_are_normalised(text, normal):
    assert normalize_queue_list(text) == normal


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one queue"),
        ("a,,b", "empty queue name"),
        ("a,", "empty queue name"),
        ("my queue", "whitespace"),
        ("!a,!b", "only of negations"),
        ("a,!", "lone '!'"),
    ],
)
def test_bad_queue_lists_are_refused_with_a_reason(text, message):
    with pytest.raises(ValidationError, match=message):
        normalize_queue_list(text)


def test_split_queues():
    assert split_queues(" a, b ,,c ") == ["a", "b", "c"]


def _rows(*rows):
    for queues, count, environment, pool in rows:
        WorkerCount.objects.create(queues=queues, count=count, environment=environment, pool=pool)


@pytest.mark.django_db
def test_layers_override_per_queue_list_and_keep_configuration_order():
    _rows(
        ("foo", 1, "", ""),
        ("bar", 2, "", ""),
        ("foo,bar,baz", 1, "", ""),
        ("foo,bar,baz", 4, "production", ""),
        ("mail", 3, "production", ""),
        ("bar", 0, "", "web1"),
        ("foo", 9, "production", "web1"),
        ("other", 5, "staging", ""),
        ("elsewhere", 5, "", "web2"),
    )
    qs = WorkerCount.objects
    assert qs.counts_for(None, None) == {"foo": 1, "bar": 2, "foo,bar,baz": 1}
    assert qs.counts_for("production", "web2") == {
        "foo": 1,
        "bar": 2,
        "foo,bar,baz": 4,
        "mail": 3,
        "elsewhere": 5,
    }
    assert qs.counts_for("production", "web1") == {
        "foo": 9,
        "bar": 0,
        "foo,bar,baz": 4,
        "mail": 3,
    }
    assert list(qs.counts_for("production", "web1")) == ["foo", "bar", "foo,bar,baz", "mail"]


@pytest.mark.django_db
def test_save_normalises_and_duplicates_are_refused():
    row = WorkerCount.objects.create(queues=" a , b ", count=1)
    assert row.queues == "a,b"
    with pytest.raises(IntegrityError):
        WorkerCount.objects.create(queues="a,b", count=2)


@pytest.mark.django_db
def test_clean_reports_queue_errors_on_the_field():
    row = WorkerCount(queues="a,,b", count=1)
    with pytest.raises(ValidationError) as caught:
        row.full_clean()
    assert "queues" in caught.value.message_dict


def test_pool_state_readers_skip_states_of_another_shape(resque):
    from resque_pool.pool import state as pool_state

    pool_state.publish({"id": "h:1", "host": "h", "pid": 1, "counts": {"a": 1}})
    resque.client.sadd(resque.key("pools"), "h:x", "h:list", "h:text", "h:gone")
    resque.client.set(resque.key("pool", "h:x"), '{"id":"h:x","host":"h","pid":"x"}')
    resque.client.set(resque.key("pool", "h:list"), "[1,2]")
    resque.client.set(resque.key("pool", "h:text"), "not json")
    pools = pool_state.all_pools()
    assert [p["id"] for p in pools] == ["h:1"]
    assert "h:gone" not in resque.client.smembers(resque.key("pools"))
