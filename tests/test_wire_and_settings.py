"""Wire formats, settings defaults and the system checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core.checks import run_checks

from resque_pool.conf import DEFAULTS, settings
from resque_pool.resque import wire


def test_time_formats_match_resque():
    moment = datetime(2026, 11, 22, 7, 59, 40, tzinfo=UTC)
    assert wire.run_at(moment) == "2026-11-22T07:59:40Z"
    assert wire.failed_at(moment) == "2026/11/22 07:59:40 UTC"
    assert wire.heartbeat(int(moment.timestamp())) == "2026-11-22T07:59:40+00:00"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$", wire.started_at(moment))


def test_parse_time_reads_every_resque_format():
    expected = datetime(2026, 11, 22, 7, 59, 40, tzinfo=UTC)
    for text in (
        "2026-11-22T07:59:40Z",
        "2026-11-22T08:59:40+01:00",
        "2026-11-22 08:59:40 +0100",
        "2026/11/22 07:59:40 UTC",
        "2026/11/22 07:59:40",
    ):
        assert wire.parse_time(text) == expected, text
    # Ruby hosts write their zone abbreviation into failed_at.
    assert wire.parse_time("2026/11/22 08:59:40 CET") == expected
    assert wire.parse_time("2026/11/22 02:59:40 EST") == expected
    assert wire.parse_time("2026/11/22 07:59:40 +0000") == expected
    # %Z in zones without an abbreviation (TZ=Europe/Istanbul) writes a numeric one.
    assert wire.parse_time("2026/11/22 10:59:40 +03") == expected
    assert wire.parse_time("2026/11/22 02:29:40 -05:30") == expected
    # An unknown abbreviation falls back to UTC rather than losing the time.
    assert wire.parse_time("2026/11/22 07:59:40 XYZT") == expected
    assert wire.parse_time("not a time") is None
    assert wire.parse_time("") is None


def test_dumps_is_compact_unescaped_and_refuses_nan():
    assert wire.dumps({"a": "é/ü", "b": [1, 2]}) == '{"a":"é/ü","b":[1,2]}'
    with pytest.raises(ValueError):  # Ruby's JSON cannot read NaN
        wire.dumps(float("nan"))


def test_settings_fall_back_to_defaults():
    expected = DEFAULTS["RESQUE_POOL_LOADER_PERIOD"]
    assert settings.RESQUE_POOL_LOADER_PERIOD == expected


def test_checks_report_bad_settings(settings):
    settings.RESQUE_REDIS_URL = "localhost:6379"
    settings.RESQUE_POOL_CONFIG_LOADER = "no.such.module.loader"
    settings.RESQUE_POOL_LOADER_PERIOD = 0
    ids = {message.id for message in run_checks()}
    assert {"resque_pool.E001", "resque_pool.E003", "resque_pool.E004"} <= ids


def test_checks_pass_for_the_demo_project():
    assert [m for m in run_checks() if m.id.startswith("resque_pool")] == []


def test_client_speaks_resp2_unless_the_url_asks_for_resp3(resque, settings):
    from resque_pool.resque import connection

    assert connection.get_redis().connection_pool.connection_kwargs["protocol"] == 2
    settings.RESQUE_REDIS_URL = resque.url + "?protocol=3"
    assert connection.get_redis().connection_pool.connection_kwargs["protocol"] == 3
    assert connection.get_redis().ping()
