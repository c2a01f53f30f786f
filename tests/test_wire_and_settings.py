"""Wire formats, settings defaults and the system checks."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from django.core import checks
from django.test import override_settings

from resque_pool.conf import DEFAULTS, SETTINGS, settings
from resque_pool.resque import wire


def run_checks() -> list[checks.CheckMessage]:
    """The system checks without a database: since Django 6.0 ``run_checks()`` hands every
    alias to the model checks, and a JSONField's check then opens SQLite to ask whether it
    supports JSON; these tests are about settings and run without database access."""
    return checks.run_checks(databases=[])


def test_time_formats_match_resque():
    moment = datetime(2026, 11, 22, 7, 59, 40, tzinfo=UTC)
    assert wire.run_at(moment) == "2026-11-22T07:59:40Z"
    assert wire.failed_at(moment) == "2026/11/22 07:59:40 UTC"
    assert wire.heartbeat(int(moment.timestamp())) == "2026-11-22T07:59:40+00:00"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$", wire.started_at(moment))


def test_run_at_now_is_the_current_second_however_often_it_is_asked():
    # run_at() without a moment formats each second once; it must still follow the clock.
    for _ in range(3):
        before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        now = wire.run_at()
        after = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert before <= now <= after
        time.sleep(0.6)


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


def test_a_setting_read_once_follows_every_later_change():
    before = settings.RESQUE_PRUNE_INTERVAL  # read, and kept
    with override_settings(RESQUE_PRUNE_INTERVAL=before + 1234):
        assert settings.RESQUE_PRUNE_INTERVAL == before + 1234
        with override_settings(RESQUE_PRUNE_INTERVAL=None):
            assert settings.RESQUE_PRUNE_INTERVAL is None
        assert settings.RESQUE_PRUNE_INTERVAL == before + 1234
    assert settings.RESQUE_PRUNE_INTERVAL == before


def test_checks_report_bad_settings(settings):
    settings.RESQUE_REDIS_URL = "localhost:6379"
    settings.RESQUE_POOL_CONFIG_LOADER = "no.such.module.loader"
    settings.RESQUE_POOL_LOADER_PERIOD = 0
    ids = {message.id for message in run_checks()}
    assert {"resque_pool.E001", "resque_pool.E003", "resque_pool.E004"} <= ids


def _resque_messages():
    return [m for m in run_checks() if m.id.startswith("resque_pool")]


def test_every_setting_is_one_row_with_a_valid_default():
    names = [row.name for row in SETTINGS]
    assert len(names) == len(set(names))
    assert DEFAULTS == {row.name: row.default for row in SETTINGS}
    with pytest.raises(AttributeError):
        settings.RESQUE_NO_SUCH_SETTING  # noqa: B018


def test_checks_refuse_negative_and_zero_intervals(settings):
    settings.RESQUE_HEARTBEAT_INTERVAL = -5
    settings.RESQUE_PRUNE_INTERVAL = 0
    settings.RESQUE_POOL_STATE_TTL = -1.5
    messages = {m.msg.split()[0]: m for m in _resque_messages()}
    for name in ("RESQUE_HEARTBEAT_INTERVAL", "RESQUE_PRUNE_INTERVAL", "RESQUE_POOL_STATE_TTL"):
        assert messages[name].id == "resque_pool.E004"
        assert "must be a positive number" in messages[name].msg


BOUNDED = [row for row in SETTINGS if row.minimum is not None or row.maximum is not None]


@pytest.mark.parametrize("row", BOUNDED, ids=[row.name for row in BOUNDED])
def test_every_bounded_setting_refuses_a_value_past_its_bound_and_takes_the_bound(settings, row):
    step = 1 if row.types == (int,) else 0.5
    for bound, outside in ((row.minimum, -step), (row.maximum, step)):
        if bound is None:
            continue
        setattr(settings, row.name, bound + outside)
        [message] = _resque_messages()
        assert message.msg.startswith(f"{row.name} must be {row.expected()}"), message.msg
        setattr(settings, row.name, bound)
        assert _resque_messages() == []


def test_checks_refuse_a_string_for_a_boolean(settings):
    settings.RESQUE_FORK_PER_JOB = "no"
    [message] = _resque_messages()
    assert message.id == "resque_pool.E005"
    assert message.msg == "RESQUE_FORK_PER_JOB must be True or False, not 'no' (str)."


@pytest.mark.parametrize(
    "name, value",
    [
        ("RESQUE_REDIS_URL", b"redis://localhost"),
        ("RESQUE_NAMESPACE", 7),
        ("RESQUE_POOL_CONFIG_LOADER", ["a.b"]),
        ("RESQUE_POOL_LOADER_PERIOD", "1"),
        ("RESQUE_POOL_LOADER_PERIOD", True),
        ("RESQUE_FORK_PER_JOB", 1),
        ("RESQUE_FORK_PER_JOB", None),
        ("RESQUE_HEARTBEAT_INTERVAL", "60"),
        ("RESQUE_PRUNE_INTERVAL", None),
        ("RESQUE_REQUEUE_DIRTY_JOBS", "yes"),
        ("RESQUE_POOL_STATE_TTL", [30]),
    ],
)
def test_checks_refuse_the_wrong_type_for_every_setting(settings, name, value):
    setattr(settings, name, value)
    [message] = _resque_messages()
    assert (message.id, message.msg.split()[0]) == ("resque_pool.E005", name)
    assert type(value).__name__ in message.msg


@pytest.mark.parametrize("row", SETTINGS, ids=lambda row: row.name)
def test_every_row_refuses_a_value_of_no_accepted_type(settings, row):
    setattr(settings, row.name, object())
    [message] = _resque_messages()
    assert (message.id, message.msg.split()[0]) == ("resque_pool.E005", row.name)
    assert f"must be {row.expected()}" in message.msg


def test_checks_warn_when_pruning_would_catch_live_workers(settings):
    settings.RESQUE_HEARTBEAT_INTERVAL = 60
    settings.RESQUE_PRUNE_INTERVAL = 30
    [message] = _resque_messages()
    assert message.id == "resque_pool.W001"


@pytest.mark.parametrize("token", ["", "short-token"])
def test_checks_warn_about_a_short_metrics_token_without_showing_it(settings, token):
    settings.RESQUE_METRICS_TOKEN = token
    [message] = _resque_messages()
    assert message.id == "resque_pool.W002"
    assert "short-token" not in message.msg


def test_a_long_metrics_token_passes(settings):
    settings.RESQUE_METRICS_TOKEN = "x" * 32
    assert _resque_messages() == []


def test_checks_accept_floats_and_none_where_allowed(settings):
    settings.RESQUE_HEARTBEAT_INTERVAL = 0.5
    settings.RESQUE_PRUNE_INTERVAL = 2.5
    settings.RESQUE_POOL_CONFIG_LOADER = None
    assert _resque_messages() == []


def test_checks_never_print_the_redis_password(settings):
    settings.RESQUE_REDIS_URL = "http://:s3cret@cache.example:6379/0"
    [message] = _resque_messages()
    assert message.id == "resque_pool.E001"
    assert "s3cret" not in message.msg
    assert "'http://:********@cache.example:6379/0'" in message.msg
    settings.RESQUE_REDIS_URL = b"redis://:s3cret@cache.example"
    [message] = _resque_messages()
    assert "s3cret" not in message.msg


def test_checks_pass_for_the_demo_project():
    assert [m for m in run_checks() if m.id.startswith("resque_pool")] == []


def test_client_speaks_resp2_unless_the_url_asks_for_resp3(resque, settings):
    from resque_pool.resque import connection

    assert connection.get_redis().connection_pool.connection_kwargs["protocol"] == 2
    settings.RESQUE_REDIS_URL = resque.url + "?protocol=3"
    assert connection.get_redis().connection_pool.connection_kwargs["protocol"] == 3
    assert connection.get_redis().ping()
